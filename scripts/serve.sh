#!/usr/bin/env bash
# README command 1: install everything, then start the service on its embedded default
# (qdrant-edge-py on disk under ./data, Celery worker in this process, no servers to install).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/snapdex serve "$@"
