"""ms per gradient update at batch 256, horizon 3, for model sizes 1M and 5M (fp32 and bf16).

    python bench/update.py [--sizes 1 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from agents.agent import Agent  # noqa: E402
from agents.batch import Batch  # noqa: E402
from agents.config import make_agent_config  # noqa: E402
from bench.common import count_flops, matmul_gflops, timed  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", nargs="+", default=["1", "5"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--horizon", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads={args.threads}  plain fp32 matmul {matmul_gflops():.1f} GFLOP/s")
    print(f"{'size':>5} {'prec':>5} {'params(M)':>10} {'ms/update':>10} {'GFLOP/update':>13} {'updates/s':>10}")
    H, B = args.horizon, args.batch
    for size in args.sizes:
        for prec in args.precisions:
            cfg = make_agent_config(obs_dim=39, action_dim=6, episode_lengths=[500] * 80, model_size=size,
                                    precision=prec, optim=dict(batch_size=B, horizon=H))
            agent = Agent(cfg)
            batch = Batch(obs=torch.randn(H + 1, B, 39), action=torch.rand(H, B, 6) * 2 - 1,
                          reward=torch.randn(H, B), terminated=torch.zeros(H, B),
                          task=torch.randint(0, 80, (B,)), action_mask=torch.ones(B, 6))
            flops = count_flops(lambda: agent.update(batch))
            sec = timed(lambda: agent.update(batch), reps=5)
            print(f"{size:>5} {prec:>5} {agent.model.num_parameters() / 1e6:10.2f} {sec * 1e3:10.1f} "
                  f"{flops / 1e9:13.2f} {1 / sec:10.2f}", flush=True)


if __name__ == "__main__":
    main()
