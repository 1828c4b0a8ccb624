"""The shipped Prometheus alerting rules (deploy/prometheus/alerts.yml): valid for `promtool check rules`, each alert
fires and stays silent when it should (`promtool test rules deploy/prometheus/alerts_test.yml`), and every metric
they read is one the service exports."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from harness.procs import REPO

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "alerts_test.yml"


def promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed (Debian package prometheus, in scripts/apt-packages.txt; .ci/run "
                    "installs it)")
    return tool


def test_the_rules_pass_promtool_check():
    out = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 11 rules found" in out.stdout


def test_each_alert_fires_and_stays_silent_as_the_unit_tests_say():
    out = subprocess.run([promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=120,
                         cwd=RULE_TESTS.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    # Every alert is tested, firing at least once and silent at least once.
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    cases = [c for t in yaml.safe_load(RULE_TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    assert {c["alertname"] for c in cases if c["exp_alerts"]} == alerts
    assert {c["alertname"] for c in cases if not c["exp_alerts"]} >= alerts - {"SnapdexDocumentsFailing",
                                                                               "SnapdexJobsStuckQueued"}


def test_the_rules_read_metrics_the_service_exports():
    exported = (REPO / "api" / "metrics.py").read_text()
    used = set(re.findall(r"\b(snapdex_[a-z0-9_]+)", RULES.read_text()))
    assert used
    for name in used:
        base = re.sub(r"_(total|bucket|count|sum)$", "", name)
        assert f'"{base}"' in exported, f"{name} is not exported by api/metrics.py"


def test_the_monitoring_profiles_prometheus_config_is_valid():
    config = REPO / "deploy" / "prometheus" / "prometheus.yml"
    # --syntax-only: the operator key file it names exists only inside the container (a compose secret).
    out = subprocess.run([promtool(), "check", "config", "--syntax-only", str(config)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
