#!/usr/bin/env bash
# Set up (idempotent) and run the test suite. Extra arguments go to pytest (one process).
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh || exit 1
export MUJOCO_GL=egl WANDB_MODE=disabled OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1

# pytest's exit code 5 ("no tests collected") is reported and not counted as a failure
pytest_run() {
  .venv/bin/python -m pytest -q "$@"
  local code=$?
  if [ "$code" -eq 5 ]; then
    echo "pytest collected no tests for: $* (exit code 5); nothing failed" >&2
    return 0
  fi
  return "$code"
}

if [ "$#" -gt 0 ]; then
  pytest_run --durations=30 "$@"
  exit $?
fi

# With no arguments: every test but the inductor compile checks (minutes of compilation each; run those
# with ./scripts/test.sh -m compile tests/agents), in two phases.
# 1. The tests without Ray, on one pytest-xdist worker per core (at most 4): each is one process with one
#    torch thread, so on 2 cores two of them run side by side.
# 2. The tests with Ray (marked `ray`, or using the ray_session fixture: tests/conftest.py), in one
#    process, in order: one Ray session whose actors use every core, and no second Ray beside it.
workers=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1)  # nproc obeys OMP_NUM_THREADS
[ "$workers" -gt 4 ] && workers=4
parallel=()
[ "$workers" -gt 1 ] && parallel=(-n "$workers")
pytest_run --durations=15 ${parallel[@]+"${parallel[@]}"} -m "not compile and not ray" tests
first=$?
pytest_run --durations=20 -m "ray and not compile" tests
second=$?
[ "$first" -ne 0 ] && exit "$first"
exit "$second"
