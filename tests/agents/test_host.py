"""agents/host.py: a process's CPU share and the allocator settings that keep freed memory."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.host import freed_memory_kept, keep_freed_memory, use_cpu_share

REPO = Path(__file__).resolve().parents[2]


# a process that turned the settings off: use_cpu_share sets its threads and leaves the allocator alone
SCRIPT = """
import json
import torch
from agents.host import freed_memory_kept, use_cpu_share
use_cpu_share(2)
print(json.dumps({"kept": freed_memory_kept(), "threads": torch.get_num_threads()}))
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="the allocator settings are glibc's",
)
def test_the_allocator_setting_is_in_effect_after_use_cpu_share_unless_turned_off():
    # what it buys is measured by the benches (faults/call, --glibc-default-malloc), not asserted here:
    # how many page faults glibc's defaults cost depends on the process's allocation history (a 1M plan:
    # ~1.6-8.5k per call in development processes, 850 in one CI process)
    off = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "LATENTFLEET_KEEP_FREED_MEMORY": "0"},
    )
    on = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "LATENTFLEET_KEEP_FREED_MEMORY": "1"},
    )
    assert on.returncode == 0, on.stderr[-2000:]
    assert json.loads(on.stdout.strip().splitlines()[-1]) == {"kept": True, "threads": 2}
    out, err = off.communicate(timeout=120)
    assert off.returncode == 0, err[-2000:]
    assert json.loads(out.strip().splitlines()[-1]) == {"kept": False, "threads": 2}
    assert keep_freed_memory() is freed_memory_kept() is True  # idempotent in this process


def test_use_cpu_share_sets_at_least_one_thread():
    threads = torch.get_num_threads()
    try:
        use_cpu_share(0)
        assert torch.get_num_threads() == 1
        use_cpu_share(2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
