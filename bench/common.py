"""Shared by the benchmarks: a fp32/bf16 matmul reference rate measured in the same run."""
from __future__ import annotations

import time

import torch


def matmul_gflops(dtype=torch.float32, n: int = 1024, reps: int = 20) -> float:
    """GFLOP/s of a plain [n, n] x [n, n] matmul on this machine with the current thread count."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


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
