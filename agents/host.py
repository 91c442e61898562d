"""Per-process host settings that every process which plans or trains applies at its start.

`use_cpu_share(threads)`: torch's intra-op threads set to the process's CPU share (more threads
than cores stall at OpenMP barriers when the other cores are busy) and glibc's allocator told to
keep freed memory (`keep_freed_memory`).
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

import torch

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20  # glibc's maximum
_TRIM_THRESHOLD = 1 << 30
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Serve allocations up to 32 MB from the heap and keep freed heap memory for reuse (up to 1 GB
    free at the top before it goes back to the OS), instead of glibc's defaults.

    Why: under the defaults, the planner's and the update's intermediate tensors above glibc's
    (dynamic) mmap threshold are fresh mmaps that are unmapped when freed, so every pass pays page
    faults on first touch: measured on a 2-core AVX2 machine, 1 thread, 28k minor faults and ~100 ms
    system time per planned action of the 1M model (5M: 16k, ~60 ms), 8.6k faults and ~28 ms per 1M
    update at batch 256; with this, 0-300 (bench/planner.py and bench/update.py print both). The
    process then holds its peak working set instead of returning it between calls.

    Only glibc on Linux; elsewhere (or with LATENTFLEET_KEEP_FREED_MEMORY=0) nothing changes.
    Returns whether the settings are in effect. Idempotent."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("LATENTFLEET_KEEP_FREED_MEMORY", "1") == "0":
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # mallopt returns 1 on success; setting either parameter also turns off glibc's dynamic threshold
    _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
    return _applied


def freed_memory_kept() -> bool:
    """Whether `keep_freed_memory()` has put its settings in effect in this process."""
    return bool(_applied)


def use_cpu_share(threads: int) -> None:
    """torch intra-op threads = this process's CPU share (>= 1), and `keep_freed_memory()`."""
    torch.set_num_threads(max(1, int(threads)))
    keep_freed_memory()
