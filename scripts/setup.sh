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
  # --no-compile: no .pyc for every module of every package at install time (torch alone: ~80 s -> ~25 s
  # on 2 cores); Python compiles the modules a run imports, once, on first import
  .venv/bin/python -m pip install --quiet --no-compile --upgrade pip setuptools wheel
  # torch first, pinned: an unpinned torch would pull a multi-GB CUDA build on CPU machines.
  if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv/bin/python -m pip install --quiet --no-compile "${LATENTFLEET_TORCH_SPEC:-torch==2.13.0}"
  fi
  # setuptools' "Editable installation ... folders with the same name as your package" notice (10 lines
  # that pip shows even with --quiet) repeats what README "Layout" says; only that message is ignored
  PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Editable installation" \
    .venv/bin/python -m pip install --quiet --no-compile -e ".[dev]"
  echo "$want" > "$stamp"
fi
