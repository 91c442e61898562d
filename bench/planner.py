"""ms per planned action for B envs at the reference planner settings, fp32 and bf16, and the
planner's achieved GFLOP/s as a fraction of a plain fp32 matmul measured in the same run.

    python bench/planner.py [--sizes 1 5] [--batches 1 8 32] [--threads 1] [--task-conditioning both]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from agents.agent import Agent  # noqa: E402
from agents.config import make_agent_config  # noqa: E402
from bench.common import count_flops, matmul_gflops, timed  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", nargs="+", default=["1", "5"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--num-tasks", type=int, default=80, help="mt80 dims: obs 39, action 6, 80 task embeddings")
    p.add_argument("--rows-per-pass", type=int, default=None, help="planner rows per pass (default: all)")
    p.add_argument("--task-conditioning", default="table", choices=["table", "descriptor", "both"],
                   help="descriptor/both: random 115-feature task descriptors through the descriptor map")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ref = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    print(f"threads={args.threads}  plain matmul: fp32 {ref['fp32']:.1f} GFLOP/s, bf16 {ref['bf16']:.1f} GFLOP/s")
    print("reference planner: horizon 3, 6 iterations, 512 samples, 64 elites, 24 policy trajectories; "
          f"task conditioning: {args.task_conditioning}")
    print(f"{'size':>5} {'prec':>5} {'B':>4} {'ms/call':>9} {'ms/action':>10} {'GFLOP/action':>13} "
          f"{'GFLOP/s':>8} {'% fp32 matmul':>14}")
    for size in args.sizes:
        for prec in args.precisions:
            cfg = make_agent_config(obs_dim=39, action_dim=6, episode_lengths=[500] * args.num_tasks,
                                    model_size=size, precision=prec, model={"task_conditioning": args.task_conditioning},
                                    planner={"rows_per_pass": args.rows_per_pass},
                                    task_descriptors=torch.randn(args.num_tasks, 115).tolist())
            agent = Agent(cfg)
            for B in args.batches:
                obs = torch.randn(B, 39)
                task = torch.arange(B) % args.num_tasks
                state = agent.new_planner_state(B)
                call = lambda: agent.act(obs, task, state)  # noqa: E731
                flops = count_flops(call)
                sec = timed(call, reps=3 if B * int(size if size.isdigit() else 1) <= 40 else 2)
                gflops = flops / sec / 1e9
                print(f"{size:>5} {prec:>5} {B:>4} {sec * 1e3:9.1f} {sec * 1e3 / B:10.1f} {flops / B / 1e9:13.2f} "
                      f"{gflops:8.1f} {100 * gflops / ref['fp32']:13.0f}%", flush=True)


if __name__ == "__main__":
    main()
