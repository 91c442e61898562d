#!/usr/bin/env bash
# Set up (idempotent) and run the test suite. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh || exit 1
export MUJOCO_GL=egl WANDB_MODE=disabled OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
# with no arguments: every test but the inductor compile checks (minutes of compilation each;
# run those with ./scripts/test.sh -m compile tests/agents). One process: on 2 cores, pytest-xdist's
# `-n 2 --dist loadgroup` (Ray tests grouped on one worker, see tests/conftest.py) was slower, the
# Ray tests' actors and the other worker's tests competing for the cores.
if [ "$#" -eq 0 ]; then set -- -m "not compile" tests; fi
.venv/bin/python -m pytest -q --durations=30 "$@"
code=$?
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests for: $* (exit code 5); nothing failed" >&2
  exit 0
fi
exit "$code"
