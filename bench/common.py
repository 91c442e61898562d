"""Shared by the benchmarks: what the machine is, a plain fp32 matmul rate measured in the same
run (to express figures in machine-independent units), timing, FLOP and kernel-launch counts."""
from __future__ import annotations

import time

import torch

from agents.precision import has_native_bf16


def matmul_gflops(dtype=torch.float32, n: int = 1024, reps: int = 20) -> float:
    """GFLOP/s of a plain [n, n] x [n, n] matmul on this machine with the current thread count
    (median of `reps` timed products)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    return 2 * n**3 / timed(lambda: a @ b, reps=reps, warmup=0) / 1e9


def machine_line(matmul: float) -> str:
    """One line naming the machine a figure was taken on."""
    return (f"machine: torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
            f"native bf16 {has_native_bf16('cpu')}, torch threads {torch.get_num_threads()}, "
            f"plain fp32 1024^3 matmul {matmul:.1f} GFLOP/s")


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


def count_launches(fn) -> int:
    """Top-level aten ops that fn() dispatches (torch.profiler on CPU): each would be at least one
    kernel launch on a GPU, so this is the CPU-side proxy for launches per call."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()

    def outermost_aten(e) -> bool:
        p = e.cpu_parent
        while p is not None:
            if p.name.startswith("aten::"):
                return False
            p = p.cpu_parent
        return e.name.startswith("aten::")

    return sum(1 for e in prof.events() if outermost_aten(e))
