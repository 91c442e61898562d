#!/usr/bin/env bash
# Idempotent set-up: a virtualenv in .venv with the project installed editable.
# Re-runs only when pyproject.toml changed. GPU users: see README ("GPU").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.latentfleet-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # --no-compile: no .pyc for every module of every package at install time (set-up 3.4 -> 1.0 min on 2
  # cores); the modules a run imports are compiled once below, the rest on first import (if allowed)
  .venv/bin/python -m pip install --quiet --no-compile --upgrade pip setuptools wheel
  # torch first, pinned: an unpinned torch would pull a multi-GB CUDA build on CPU machines.
  if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv/bin/python -m pip install --quiet --no-compile "${LATENTFLEET_TORCH_SPEC:-torch==2.13.0}"
  fi
  # setuptools' "Editable installation ... folders with the same name as your package" notice (10 lines
  # that pip shows even with --quiet) repeats what README "Layout" says; only that message is ignored
  PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Editable installation" \
    .venv/bin/python -m pip install --quiet --no-compile -e ".[dev]"
  # byte-compile what a run imports (~7 s), also where PYTHONDONTWRITEBYTECODE is set: without .pyc files
  # every process, each Ray worker included, would compile them again at start
  PYTHONDONTWRITEBYTECODE= MUJOCO_GL=${MUJOCO_GL:-egl} .venv/bin/python -c "import torch, ray, ray.util.queue, zarr, gymnasium, hydra, \
matplotlib.pyplot, mujoco, metaworld, pytest; from dm_control import suite; import distributed.loop, \
distributed.actors, distributed.ray_parts, launch.common" >/dev/null || echo "set-up: pre-compiling imports failed (see above); runs compile them at start" >&2
  echo "$want" > "$stamp"
fi
