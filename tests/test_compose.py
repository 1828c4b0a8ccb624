"""The production shape must at least pass `docker compose config` (Debian's docker-compose here)."""

import shutil
import subprocess

import pytest
import yaml

from harness.procs import REPO


def test_compose_file_is_valid_and_complete():
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    out = subprocess.run([tool, "-f", str(REPO / "docker-compose.yml"), "config"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    services = config["services"]
    assert {"postgres", "qdrant", "redis", "api", "worker", "beat"} <= set(services)
    assert services["beat"]["command"] == ["snapdex", "beat"]  # the sources' schedule: one beat, beside the workers
    env = services["worker"]["environment"]
    assert env["SNAPDEX_STORE_BACKEND"] == "qdrant" and env["SNAPDEX_BROKER_URL"].startswith("redis://")
    assert "--appendonly" in services["redis"]["command"]
    # The catalog is PostgreSQL, with its own volume and a health check the API and the workers wait for.
    assert services["api"]["environment"]["SNAPDEX_DATABASE_URL"] == env["SNAPDEX_DATABASE_URL"]
    assert env["SNAPDEX_DATABASE_URL"].startswith("postgresql+psycopg://snapdex:") and "@postgres:5432/" in env["SNAPDEX_DATABASE_URL"]
    assert services["postgres"]["volumes"] and "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        # Nothing shared through a volume: API replicas and workers may run on other hosts.
        assert not services[name].get("volumes")
    from db import check_url

    check_url(env["SNAPDEX_DATABASE_URL"])


def test_the_monitoring_profile_runs_prometheus_with_the_shipped_rules_and_alertmanager():
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    out = subprocess.run([tool, "-f", str(REPO / "docker-compose.yml"), "--profile", "monitoring", "config"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    for name in ("prometheus", "alertmanager"):
        assert services[name]["profiles"] == ["monitoring"]  # optional: `up` without the profile leaves them out
    assert "profiles" not in services["api"] and "profiles" not in services["worker"]
    # Debian's docker-compose 1.x prints short syntax (source:target:mode).
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"] if v.startswith("/")}
    assert mounts["/etc/prometheus/alerts.yml"].endswith("deploy/prometheus/alerts.yml")
    assert mounts["/etc/prometheus/prometheus.yml"].endswith("deploy/prometheus/prometheus.yml")
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]  # beside the config, as mounted
    scrape = config["scrape_configs"][0]
    assert scrape["job_name"] == "snapdex" and scrape["static_configs"][0]["targets"] == ["api:8000"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_the_image_copies_every_package_the_project_installs():
    # A package left out of the Dockerfile's COPY lines installs nothing, and the image fails on its first import
    # (notify/ and sources/ were missing until a review found it).
    import re
    import tomllib

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in patterns}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (REPO / "Dockerfile").read_text(), flags=re.M))
    assert packages == copied, {"not copied": sorted(packages - copied), "not a package": sorted(copied - packages)}
