#!/usr/bin/env bash
# README command 2: install everything, then run the whole test suite.
# The tests use Debian's redis-server, postgresql, tesseract and docker-compose (scripts/apt-packages.txt): installed here
# when missing and run as root; elsewhere the tests that need them skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  bash scripts/apt-install.sh
fi
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
