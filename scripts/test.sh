#!/usr/bin/env bash
# Runs the tfzoo test suite (setting the machine up first when needed).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/training -k resume
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
echo "== format and lint (ruff)"
.venv/bin/ruff format --check .
.venv/bin/ruff check .
echo "== tests"
# Two workers: graph building is single-threaded Python, and the machines have 2 cores.
exec .venv/bin/python -m pytest -q -n 2 -rfEs --durations=25 "${@:-tests}"
