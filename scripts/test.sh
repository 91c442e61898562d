#!/usr/bin/env bash
# Set up (idempotent) and run the test suite. Extra arguments go to pytest (one process).
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh || exit 1
unset PYTHONDONTWRITEBYTECODE  # the venv has no .pyc for modules set-up did not import: cache them once
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

# With no arguments: first the static checks (scripts/check.sh: ruff, basedpyright, mkdocs --strict; about a
# minute), then every test but the inductor compile checks (minutes of compilation each; run those
# with ./scripts/test.sh -m compile tests/agents), in two streams that run side by side:
# - the tests with Ray (marked `ray`, or using the ray_session fixture: tests/conftest.py), in one
#   process, in order: one Ray session, no second Ray beside it. Its actors keep ~1.5 of 2 cores busy
#   (start-up, waits on actors), so the other stream fills the rest;
# - the tests without Ray on pytest-xdist workers (one per core beyond the first, at least one, at most
#   3), each one process with one torch thread. Their output is printed when both streams are done.
./scripts/check.sh
checks=$?

cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1)  # nproc obeys OMP_NUM_THREADS
workers=$(( cores - 1 ))
[ "$workers" -lt 1 ] && workers=1
[ "$workers" -gt 3 ] && workers=3
parallel=()
[ "$workers" -gt 1 ] && parallel=(-n "$workers")
log=$(mktemp -t latentfleet-tests-XXXXXX.log)
echo "tests without Ray: in the background ($workers worker(s)), output in $log; tests with Ray:"
# The numerical checks (tests/agents) also run on torch's other CPU kernels: float rounding differs between
# CPUs (AMD/Intel, AVX2/AVX-512/AMX), and ATEN_CPU_CAPABILITY shows that spread on this one machine. Only the
# kernels this CPU can execute: torch's own choice (the best it found) and those below it on x86's ladder
# default < avx2 < avx512. Forcing one above it is SIGILL ("Illegal instruction") on a CPU without AVX-512.
# The reruns take the files that compare numbers at a tolerance (not the learning or report checks).
native=$(.venv/bin/python -c "import torch; print(torch.backends.cpu.get_cpu_capability().lower())" 2>/dev/null)
others_caps=$(./scripts/cpu_kernels.sh "$native")
numeric=(tests/agents/test_components.py tests/agents/test_planner.py tests/agents/test_noise.py
  tests/agents/test_task_conditioning.py tests/agents/test_tdmpc2_fidelity.py tests/agents/test_tdmpc2_import.py
  tests/agents/test_constraints.py tests/agents/test_diagnostics_metrics.py tests/agents/test_precision.py
  tests/agents/test_running_scale.py)
started=$SECONDS
{
  pytest_run --durations=15 ${parallel[@]+"${parallel[@]}"} -m "not compile and not ray" tests
  code=$?
  for cap in $others_caps; do
    echo "=== tests/agents' numerical checks with ATEN_CPU_CAPABILITY=$cap (this CPU runs $native kernels by default) ==="
    ATEN_CPU_CAPABILITY=$cap pytest_run ${parallel[@]+"${parallel[@]}"} -m "not compile and not ray" "${numeric[@]}" || code=1
  done
  echo "tests without Ray took $(( SECONDS - started )) s"
  exit "$code"
} > "$log" 2>&1 &
others=$!
trap 'kill "$others" 2>/dev/null' INT TERM  # a background job ignores Ctrl-C: stop it with the Ray stream
pytest_run --durations=20 -m "ray and not compile" tests
with_ray=$?
echo "tests with Ray took $(( SECONDS - started )) s"
wait "$others"
without_ray=$?
echo; echo "=== tests without Ray ==="; cat "$log"
echo "static checks: exit $checks; tests with Ray: exit $with_ray; tests without Ray: exit $without_ray"
[ "$without_ray" -ne 0 ] && exit "$without_ray"
[ "$with_ray" -ne 0 ] && exit "$with_ray"
exit "$checks"
