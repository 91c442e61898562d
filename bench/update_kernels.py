"""The update's Adam and Mish, ours against the plain ones, paired in one process: for-loop Adam and
aten's mish kernels (before) vs fused Adam and a mish with its own backward (agents/layers.py; after).
Batch 256, horizon 3, mt80 dims (obs 39, action 6, 80 tasks), one torch thread, the two interleaved
(6 rounds of 3 updates each), medians; prints the machine and its fp32 matmul rate.

    python bench/update_kernels.py [--sizes 1 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import agents.layers as layers  # noqa: E402
from agents.agent import Agent  # noqa: E402
from agents.batch import Batch  # noqa: E402
from agents.config import make_agent_config  # noqa: E402
from bench.common import machine_line, matmul_gflops  # noqa: E402

OURS = layers.mish


def aten_mish(x: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and x.requires_grad:
        return F.mish(x)
    return OURS(x)  # planning (no autograd) is the same in both


def use(agent: Agent, ours: bool) -> None:
    layers.mish = OURS if ours else aten_mish  # looked up at call time by every layer
    for opt in (agent.optim, agent.pi_optim):
        for g in opt.param_groups:
            g["fused"], g["foreach"] = (True, None) if ours else (None, False)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", nargs="+", default=["1", "5"])
    args = p.parse_args()
    torch.set_num_threads(1)
    print(machine_line(matmul_gflops()), flush=True)
    for size in args.sizes:
        cfg = make_agent_config(obs_dim=39, action_dim=6, episode_lengths=[500] * 80, model_size=size)
        agent, H, B = Agent(cfg), cfg.planner.horizon, 256

        def batch() -> Batch:
            return Batch(
                obs=torch.randn(H + 1, B, 39),
                action=torch.rand(H, B, 6) * 2 - 1,
                reward=torch.rand(H, B),
                terminated=torch.zeros(H, B),
                task=torch.randint(0, 80, (B,)),
                action_mask=torch.ones(B, 6),
            )

        ms: dict[bool, list[float]] = {False: [], True: []}
        for ours in (False, True):  # warm-up
            use(agent, ours)
            for _ in range(2):
                agent.update(batch())
        for _ in range(6):
            for ours in (False, True):
                use(agent, ours)
                t = time.perf_counter()
                for _ in range(3):
                    agent.update(batch())
                ms[ours].append((time.perf_counter() - t) / 3 * 1e3)
        before, after = statistics.median(ms[False]), statistics.median(ms[True])
        print(
            f"{size}M update, batch {B}: for-loop Adam + aten mish {before:.0f} ms, fused Adam + our mish "
            f"{after:.0f} ms, after/before {after / before:.2f}",
            flush=True,
        )
    layers.mish = OURS


if __name__ == "__main__":
    main()
