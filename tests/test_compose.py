"""The production shape must at least pass `docker compose config` (Debian's docker-compose here)."""

import shutil
import subprocess

import pytest
import yaml

from tests.procs import REPO


def test_compose_file_is_valid_and_complete():
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    out = subprocess.run([tool, "-f", str(REPO / "docker-compose.yml"), "config"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    assert {"qdrant", "redis", "api", "worker"} <= set(config["services"])
    env = config["services"]["worker"]["environment"]
    assert env["SNAPDEX_STORE_BACKEND"] == "qdrant" and env["SNAPDEX_BROKER_URL"].startswith("redis://")
    assert "--appendonly" in config["services"]["redis"]["command"]
    assert config["services"]["api"]["volumes"] and config["services"]["worker"]["volumes"]
