#!/usr/bin/env bash
# README command 2: install everything, then run the whole test suite.
# Tests that need redis-server use Debian's package (installed here when missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
