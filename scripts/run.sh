#!/usr/bin/env bash
# Set up (idempotent) and run a Python entry point of the project in its venv:
#   ./scripts/run.sh launch/mt80.py preset=laptop
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
unset PYTHONDONTWRITEBYTECODE  # the venv has no .pyc for modules set-up did not import: cache them once
export MUJOCO_GL=${MUJOCO_GL:-egl} WANDB_MODE=${WANDB_MODE:-offline} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec .venv/bin/python "$@"
