"""agents/host.py: a process's CPU share and the allocator settings that keep freed memory."""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# plans of the 1M model (one MPPI iteration of 512 samples): under glibc's defaults its intermediate
# tensors above glibc's mmap threshold are fresh pages on every call (measured ~4-5k minor faults per
# call; the 6-iteration reference plan ~28k), with the settings the freed memory is reused (~0-20)
SCRIPT = """
import json, resource
import torch
from agents.host import freed_memory_kept, use_cpu_share
use_cpu_share(2)
threads = torch.get_num_threads()
torch.set_num_threads(1)
from agents.agent import Agent
from agents.config import make_agent_config
agent = Agent(make_agent_config(obs_dim=39, action_dim=6, episode_lengths=[500], model_size="1",
                                planner=dict(iterations=1)))
obs, task = torch.randn(1, 39), torch.zeros(1, dtype=torch.long)
state = agent.new_planner_state(1)
for _ in range(2):
    agent.act(obs, task, state)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    agent.act(obs, task, state)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4
print(json.dumps({"kept": freed_memory_kept(), "faults": faults, "threads": threads}))
"""


def _start(**env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO), **env})


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="the allocator settings are glibc's")
def test_a_plan_reuses_freed_memory_without_page_faults_unless_turned_off():
    on, off = _start(), _start(LATENTFLEET_KEEP_FREED_MEMORY="0")  # side by side
    on, off = _result(on), _result(off)
    assert on["threads"] == off["threads"] == 2
    assert on["kept"] is True and off["kept"] is False
    assert off["faults"] > 1000, off  # glibc's defaults: fresh pages on every call
    assert on["faults"] < off["faults"] / 10, (on, off)
