#!/usr/bin/env bash
# Creates .venv and installs snapdex with its test tools. Safe to run again: it reinstalls only when
# pyproject.toml changed. Torch is pinned to the CPU build first: a bare "torch" pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.snapdex-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
