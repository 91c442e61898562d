#!/usr/bin/env bash
# Set up (idempotent) and run the test suite. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh || exit 1
export MUJOCO_GL=egl WANDB_MODE=disabled OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
# with no arguments: every test but the inductor compile checks (minutes of compilation each;
# run those with ./scripts/test.sh -m compile tests/agents), on one pytest-xdist worker per core
# (at most 4; every test torch-single-threaded): the tests that use Ray all run on one worker, in
# order (tests/conftest.py), the rest are spread over the others
if [ "$#" -eq 0 ]; then
  workers=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1)  # nproc obeys OMP_NUM_THREADS
  [ "$workers" -gt 4 ] && workers=4
  if [ "$workers" -gt 1 ]; then set -- -n "$workers" --dist loadgroup -m "not compile" tests
  else set -- -m "not compile" tests; fi
fi
.venv/bin/python -m pytest -q --durations=30 "$@"
code=$?
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests for: $* (exit code 5); nothing failed" >&2
  exit 0
fi
exit "$code"
