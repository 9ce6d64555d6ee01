#!/usr/bin/env bash
# The GPU check in one command: CUDA oracle tests, `sweeper bench --device cuda` for every model and the
# quickstart on a shared GPU, into gpu_check.json (tools/gpu_check.py says what each step does).
# Run from anywhere after README.md's set-up command; extra arguments go to tools/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m tools.gpu_check "$@"
