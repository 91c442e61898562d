"""ms per gradient update at batch 256, horizon 3 (mt80 dims: obs 39, action 6, 80 tasks), also in
units of a plain fp32 matmul measured in the same run (ms x GFLOP/s), so figures compare across machines.

    python bench/update.py [--sizes 1 5] [--threads 1] [--compile off|default|reduce-overhead]

Threads default to 1, a Learner's default (cpus_per_learner 1); the allocator keeps freed memory as in
every run (agents/host.py; `--glibc-default-malloc` measures glibc's defaults). `--precisions bf16` falls back to
fp32 (with a warning) on a CPU without native bf16; `--force-bf16` runs it anyway.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from agents.agent import Agent  # noqa: E402
from agents.batch import Batch  # noqa: E402
from agents.config import COMPILE_MODES, make_agent_config  # noqa: E402
from bench.common import (
    add_host_args,
    count_flops,
    host_setup,
    machine_line,
    matmul_gflops,  # noqa: E402
    minor_faults,
    timed,
)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", nargs="+", default=["1", "5"])
    p.add_argument("--precisions", nargs="+", default=["fp32"])
    p.add_argument("--force-bf16", action="store_true", help="run bf16 even without native bf16 (slow)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--horizon", type=int, default=3)
    add_host_args(p)
    p.add_argument("--compile", default="off", choices=COMPILE_MODES, help="compile_update")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    host_setup(args)
    ref = matmul_gflops()
    print(machine_line(ref))
    print(f"update: batch {args.batch}, horizon {args.horizon}; compile {args.compile}")
    print(
        f"{'size':>5} {'prec':>9} {'params(M)':>10} {'ms/update':>10} {'ms x GF/s':>10} {'GFLOP/update':>13} "
        f"{'updates/s':>10} {'faults/update':>14}"
    )
    H, B = args.horizon, args.batch
    for size in args.sizes:
        for prec in args.precisions:
            cfg = make_agent_config(
                obs_dim=39,
                action_dim=6,
                episode_lengths=[500] * 80,
                model_size=size,
                precision=prec,
                planner=dict(horizon=H),
            )
            eager = Agent(cfg, **({"native_bf16": lambda device: True} if args.force_bf16 else {}))
            batch = Batch(
                obs=torch.randn(H + 1, B, 39),
                action=torch.rand(H, B, 6) * 2 - 1,
                reward=torch.randn(H, B),
                terminated=torch.zeros(H, B),
                task=torch.randint(0, 80, (B,)),
                action_mask=torch.ones(B, 6),
            )
            flops = count_flops(lambda: eager.update(batch))
            agent = eager
            if args.compile != "off":
                agent = Agent(
                    dataclasses.replace(cfg, compile_update=args.compile),
                    **({"native_bf16": lambda device: True} if args.force_bf16 else {}),
                )
                t = time.perf_counter()
                agent.update(batch)
                print(f"  (first compiled update, compiling included: {time.perf_counter() - t:.0f} s)")
            sec = timed(lambda: agent.update(batch), reps=args.reps)
            faults = minor_faults(lambda: agent.update(batch))
            label = prec if prec == "fp32" or agent.autocast_dtype is not None else "bf16>fp32"  # fell back
            print(
                f"{size:>5} {label:>9} {agent.model.num_parameters() / 1e6:10.2f} {sec * 1e3:10.1f} "
                f"{sec * 1e3 * ref:10.0f} {flops / 1e9:13.2f} {1 / sec:10.2f} {faults:14d}",
                flush=True,
            )


if __name__ == "__main__":
    main()
