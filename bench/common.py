"""Shared by the benchmarks: what the machine is, a plain fp32 matmul rate measured in the same
run (to express figures in machine-independent units), timing, page-fault and FLOP counts
(kernel launches: agents/testing/launches.py)."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path

import torch

from agents.host import freed_memory_kept, keep_freed_memory
from agents.precision import has_native_bf16
from distributed.run_log import finished


def add_host_args(p) -> None:
    p.add_argument("--threads", type=int, default=1, help="torch threads (EnvRunner and Learner default: 1)")
    p.add_argument(
        "--glibc-default-malloc",
        action="store_true",
        help="leave glibc's allocator at its defaults (as every run did before agents/host.py), "
        "to measure that lever: freed tensors go back to the OS and page-fault in again",
    )


def host_setup(args) -> None:
    """What a runner or learner process does at start (agents.host.use_cpu_share), or without the
    allocator settings under --glibc-default-malloc."""
    torch.set_num_threads(args.threads)
    if not args.glibc_default_malloc:
        keep_freed_memory()


def minor_faults(fn) -> int:
    """Minor page faults of this process during fn()."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def matmul_gflops(dtype=torch.float32, n: int = 1024, reps: int = 20) -> float:
    """GFLOP/s of a plain [n, n] x [n, n] matmul on this machine with the current thread count
    (median of `reps` timed products)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    return 2 * n**3 / timed(lambda: a @ b, reps=reps, warmup=0) / 1e9


def machine_line(matmul: float) -> str:
    """One line naming the machine a figure was taken on."""
    return (
        f"machine: torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16 {has_native_bf16('cpu')}, torch threads {torch.get_num_threads()}, "
        f"allocator keeps freed memory {freed_memory_kept()}, "
        f"plain fp32 1024^3 matmul {matmul:.1f} GFLOP/s"
    )


def timed(fn, reps: int, warmup: int = 1) -> float:
    """Median seconds per call of fn()."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def count_flops(fn) -> int:
    """FLOPs torch executes in fn() (matmuls and other counted ops)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def run_jobs(jobs: list[tuple[str, list[str], Path]], out: Path, parallel: int, cwd: Path) -> dict[str, float]:
    """Run commands (name, argv, run_dir) `parallel` at a time, one core each (OMP_NUM_THREADS=1,
    MUJOCO_GL=egl), skipping those whose run has finished (run_log.finished: a re-run bench resumes);
    stderr to <out>/<name>.err. Returns the wall seconds of the jobs run now."""
    running, pending, walls = [], [j for j in jobs if not finished(j[2])], {}
    env = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}
    while pending or running:
        while pending and len(running) < parallel:
            name, cmd, _ = pending.pop(0)
            print(f"start {name}", flush=True)
            running.append(
                (
                    name,
                    subprocess.Popen(
                        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=open(Path(out) / f"{name}.err", "w")
                    ),
                    time.time(),
                )
            )
        time.sleep(5)
        for job in list(running):
            name, proc, t0 = job
            if proc.poll() is not None:
                running.remove(job)
                walls[name] = time.time() - t0
                print(f"done {name}: exit {proc.returncode}, {walls[name]:.0f} s", flush=True)
    return walls
