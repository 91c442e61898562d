"""Which precision a device can run fast: bf16 autocast only where the hardware has native bf16.

bf16 on a CPU without bf16 instructions (e.g. AVX2-only x86) is emulated and runs ~10-100x
slower than fp32, so `precision="bf16"` there falls back to fp32 with one warning per process.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch

_warned: set[str] = set()


def _cpu_flags() -> set[str] | None:
    """The CPU feature flags of /proc/cpuinfo (x86 'flags', aarch64 'Features'), None if unreadable."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        return None
    return set()


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True if this CPU executes bf16 matmuls in hardware (x86 AVX512-BF16 or AMX-BF16, Arm BF16)."""
    flags = _cpu_flags()
    if flags is not None:
        return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    # no /proc/cpuinfo (e.g. macOS): ask oneDNN, which reports hardware bf16 support
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def has_native_bf16(device: torch.device | str) -> bool:
    """Native bf16 on `device` (cpu: instruction flags; cuda: compute capability >= 8.0)."""
    device = torch.device(device)
    if device.type == "cpu":
        return cpu_has_native_bf16()
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return False


def autocast_dtype_for(
    precision: str, device: torch.device | str, native_bf16: Callable[[torch.device], bool] = has_native_bf16
) -> torch.dtype | None:
    """The autocast dtype to run `precision` with on `device`: None (fp32) or torch.bfloat16.

    bf16 on a device without native bf16 falls back to fp32 with one RuntimeWarning per process
    and device type. `native_bf16` is the detection (injectable for tests and benchmarks)."""
    if precision == "fp32":
        return None
    if precision != "bf16":
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    device = torch.device(device)
    if native_bf16(device):
        return torch.bfloat16
    if device.type not in _warned:
        _warned.add(device.type)
        cap = torch.backends.cpu.get_cpu_capability() if device.type == "cpu" else device.type
        warnings.warn(
            f"precision=bf16 asked for, but this {device.type} ({cap}) has no native bf16: emulated "
            f"bf16 runs ~10-100x slower than fp32 here, so fp32 is used instead. Set precision=fp32 "
            f"to silence this, or run bf16 on a CPU with AVX512-BF16/AMX or a GPU of compute "
            f"capability >= 8.0.",
            RuntimeWarning,
            stacklevel=3,
        )
    return None
