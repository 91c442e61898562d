"""scripts/cpu_kernels.sh: which of torch's CPU kernels the test script reruns tests/agents under."""

import os
import pathlib
import subprocess
import sys

import pytest
import torch

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "cpu_kernels.sh"
LADDER = ["default", "avx2", "avx512"]


def kernels(native):
    out = subprocess.run([str(SCRIPT), native], capture_output=True, text=True, check=True).stdout
    return out.split()


@pytest.mark.parametrize(
    "native,expected",
    [
        ("avx512", ["default", "avx2"]),
        ("avx2", ["default"]),  # an AVX2-only CPU: avx512 would be SIGILL
        ("default", []),
        ("sve256", ["default"]),
        ("", []),
    ],
)
def test_only_kernels_below_the_native_one(native, expected):
    assert kernels(native) == expected


def test_on_this_cpu_every_kernel_listed_runs():
    native = torch.backends.cpu.get_cpu_capability().lower()
    listed = kernels(native)
    assert native not in listed
    if native in LADDER:
        assert all(LADDER.index(k) < LADDER.index(native) for k in listed)
    for cap in listed:  # each one really executes here (an illegal instruction would kill the child)
        code = (
            "import torch; a = torch.randn(257, 129); (a @ a.T).exp().sum().item(); "
            "print(torch.backends.cpu.get_cpu_capability())"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "ATEN_CPU_CAPABILITY": cap}
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().lower() == cap
