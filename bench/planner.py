"""ms per planned action at the reference planner settings (horizon 3, 6 iterations, 512 samples,
64 elites, 24 policy trajectories; mt80 dims: obs 39, action 6, 80 tasks), also in units of a
plain fp32 matmul measured in the same run (ms x GFLOP/s), so figures compare across machines.

    python bench/planner.py [--sizes 1 5] [--batches 1 8] [--threads 1] [--compile off|default|reduce-overhead]
    python bench/planner.py --launches        # top-level aten ops per plan call for B = 1, 8, 64

Threads default to 1, an EnvRunner's default; the allocator keeps freed memory as in every run
(agents/host.py; `--glibc-default-malloc` measures glibc's defaults). `--precisions bf16` falls back to fp32 (with a
warning) on a CPU without native bf16; `--force-bf16` runs it anyway, to measure how slow it is.
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
from agents.config import COMPILE_MODES, TASK_CONDITIONINGS, conditioning_parts, make_agent_config  # noqa: E402
from agents.testing.launches import count_launches  # noqa: E402
from bench.common import (
    add_host_args,
    count_flops,
    host_setup,
    machine_line,  # noqa: E402
    matmul_gflops,
    minor_faults,
    timed,
)


def _agent(size: str, prec: str, num_tasks: int, conditioning: str, force_bf16: bool, **planner) -> Agent:
    # language modes: random unit rows of the encoder's width stand in for text embeddings (a plan's cost does
    # not depend on their values, and the bench needs no encoder)
    language = torch.nn.functional.normalize(torch.randn(num_tasks, 384), dim=1).tolist()
    cfg = make_agent_config(
        obs_dim=39,
        action_dim=6,
        episode_lengths=[500] * num_tasks,
        model_size=size,
        precision=prec,
        model={"task_conditioning": conditioning},
        planner=planner,
        task_descriptors=torch.randn(num_tasks, 115).tolist(),
        **(
            {"task_language": language, "language_encoder": "random rows (bench)"}
            if "language" in conditioning_parts(conditioning)
            else {}
        ),
    )
    return Agent(cfg, **({"native_bf16": lambda device: True} if force_bf16 else {}))


def launches_table(size: str, batches: list[int]) -> None:
    """Top-level aten ops per plan call: one pass over all rows (the GPU default) and the CPU default."""
    agent = _agent(size, "fp32", 80, "table", False)
    print(f"top-level aten ops per plan call (model {size}M, reference planner; CPU proxy for GPU kernel launches)")
    print(f"{'B':>4} {'one pass (GPU default)':>24} {'2 rows per pass (CPU default)':>31}")
    for B in batches:
        obs, task = torch.randn(B, 39), torch.arange(B) % 80
        counts = []
        for per_pass in (B, 2):
            pcfg = dataclasses.replace(agent.cfg.planner, rows_per_pass=per_pass)
            state = agent.new_planner_state(B)
            agent.act(obs, task, state, planner_cfg=pcfg)  # warm-up
            counts.append(count_launches(lambda: agent.act(obs, task, state, planner_cfg=pcfg)))
        print(f"{B:>4} {counts[0]:>24} {counts[1]:>31}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", nargs="+", default=["1", "5"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--precisions", nargs="+", default=["fp32"])
    p.add_argument("--force-bf16", action="store_true", help="run bf16 even without native bf16 (slow)")
    add_host_args(p)
    p.add_argument("--compile", default="off", choices=COMPILE_MODES, help="planner.compile")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--num-tasks", type=int, default=80, help="mt80 dims: obs 39, action 6, 80 task embeddings")
    p.add_argument("--rows-per-pass", type=int, default=None, help="planner rows per pass (default: 2 on CPU)")
    p.add_argument(
        "--task-conditioning",
        default="table",
        choices=list(TASK_CONDITIONINGS),
        help="descriptor/both: random 115-feature task descriptors through the descriptor map",
    )
    p.add_argument(
        "--launches",
        action="store_true",
        help="print the launches-per-call table (B = --batches, default 1 8 64) instead of timings",
    )
    args = p.parse_args()
    host_setup(args)
    ref = matmul_gflops()
    print(machine_line(ref))
    if args.launches:
        launches_table(args.sizes[0], args.batches if args.batches != [1, 8] else [1, 8, 64])
        return
    print(
        f"reference planner: horizon 3, 6 iterations, 512 samples, 64 elites, 24 policy trajectories; "
        f"task conditioning {args.task_conditioning}; compile {args.compile}"
    )
    print(
        f"{'size':>5} {'prec':>9} {'B':>4} {'ms/call':>9} {'ms/action':>10} {'ms x GF/s':>10} "
        f"{'GFLOP/action':>13} {'GFLOP/s':>8} {'% fp32 matmul':>14} {'faults/call':>12}"
    )
    for size in args.sizes:
        for prec in args.precisions:
            agent = _agent(
                size, prec, args.num_tasks, args.task_conditioning, args.force_bf16, rows_per_pass=args.rows_per_pass
            )
            eager = agent.cfg.planner
            pcfg = dataclasses.replace(eager, compile=args.compile)
            label = prec if prec == "fp32" or agent.autocast_dtype is not None else "bf16>fp32"  # fell back
            for B in args.batches:
                obs = torch.randn(B, 39)
                task = torch.arange(B) % args.num_tasks
                state = agent.new_planner_state(B)
                flops = count_flops(lambda: agent.act(obs, task, state, planner_cfg=eager))
                call = lambda: agent.act(obs, task, state, planner_cfg=pcfg)  # noqa: E731
                if args.compile != "off":
                    t = time.perf_counter()
                    call()
                    print(f"  (first compiled call, compiling included: {time.perf_counter() - t:.0f} s)")
                sec = timed(call, reps=args.reps)
                faults = minor_faults(call)
                gflops = flops / sec / 1e9
                print(
                    f"{size:>5} {label:>9} {B:>4} {sec * 1e3:9.1f} {sec * 1e3 / B:10.1f} {sec * 1e3 / B * ref:10.0f} "
                    f"{flops / B / 1e9:13.2f} {gflops:8.1f} {100 * gflops / ref:13.0f}% {faults:12d}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
