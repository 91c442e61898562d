"""agents/host.py: a process's CPU share and the allocator settings that keep freed memory."""
import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.host import freed_memory_kept, keep_freed_memory, use_cpu_share

REPO = Path(__file__).resolve().parents[2]


def plan_faults() -> float:
    """Minor page faults per plan of the 1M model (one MPPI iteration of 512 samples, 1 thread). Under
    glibc's defaults its intermediate tensors above glibc's mmap threshold are fresh pages on every
    call (measured ~4-8k faults per call; the 6-iteration reference plan ~28k); with the settings the
    freed memory is reused (~0-20)."""
    from agents.agent import Agent
    from agents.config import make_agent_config

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        agent = Agent(make_agent_config(obs_dim=39, action_dim=6, episode_lengths=[500], model_size="1",
                                        planner=dict(iterations=1)))
        obs, task = torch.randn(1, 39), torch.zeros(1, dtype=torch.long)
        state = agent.new_planner_state(1)
        for _ in range(2):
            agent.act(obs, task, state)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(4):
            agent.act(obs, task, state)
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4
    finally:
        torch.set_num_threads(threads)


# the same plans in a process that turned the settings off (glibc's defaults)
SCRIPT = """
import json, sys
import torch
from agents.host import freed_memory_kept, use_cpu_share
use_cpu_share(2)
threads = torch.get_num_threads()
sys.path.insert(0, {tests!r})
from test_host import plan_faults
print(json.dumps({{"kept": freed_memory_kept(), "faults": plan_faults(), "threads": threads}}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="the allocator settings are glibc's")
def test_a_plan_reuses_freed_memory_without_page_faults_unless_turned_off():
    off = subprocess.Popen([sys.executable, "-c", SCRIPT.format(tests=str(Path(__file__).parent))], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO), "LATENTFLEET_KEEP_FREED_MEMORY": "0"})
    assert keep_freed_memory() and freed_memory_kept()  # this process: as every run (idempotent)
    on = plan_faults()
    out, err = off.communicate(timeout=300)
    assert off.returncode == 0, err[-2000:]
    off = json.loads(out.strip().splitlines()[-1])
    assert off["kept"] is False and off["threads"] == 2  # use_cpu_share set the threads, not the allocator
    assert off["faults"] > 1000, off  # glibc's defaults: fresh pages on every call
    assert on < off["faults"] / 10, (on, off)


def test_use_cpu_share_sets_at_least_one_thread():
    threads = torch.get_num_threads()
    try:
        use_cpu_share(0)
        assert torch.get_num_threads() == 1
        use_cpu_share(2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
