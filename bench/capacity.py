"""Capacity on paper: what one runner CPU, one shard and one learner do here, and what a cluster
preset's sizes imply (which part saturates first).

    .venv/bin/python bench/capacity.py                      # model 1M and 5M, the cluster preset's sizes
    .venv/bin/python bench/capacity.py --sizes 1 --runner-steps 10 --shard-rows 100000   # quicker

Measured in one process, one torch thread each, on this machine (printed with a plain matmul rate):
- runner: an EnvRunner over 4 dm_control + 4 Meta-World tasks of mt80 (2 envs each) planning with the
  reference planner (horizon 3, 6 iterations, 512 samples, 64 elites, 24 policy trajectories) in one
  batched call per step: agent steps/s per CPU;
- shard: a ShardWriter inserting 500-step episodes (obs 39, action 6) and a ShardReader serving batches
  of 256 windows of 4 rows (bench/replay.py's settings): transitions/s in, batches/s out;
- learner: one Agent.update at the preset's per-rank batch (batch_size / num_learners) and at 256:
  updates/s per CPU.
The last table scales these to the preset (runners x cpus_per_runner, shards, learners) as if each part ran
on CPUs like these, and divides demand by supply: a ratio above 1 is the part that limits the run. GPUs change
the runner and learner rows by their FLOP rate over this CPU's (the FLOPs per action and per update are
printed); the shard row is CPU and disk work wherever the run is. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("MUJOCO_GL", "egl")

RUNNER_TASKS = [
    "walker-walk",
    "cheetah-run",
    "cartpole-swingup",
    "finger-spin",
    "mw-reach",
    "mw-push",
    "mw-door-open",
    "mw-drawer-close",
]


def runner_rate(size: str, steps: int) -> tuple[float, float]:
    """(agent steps/s, GFLOP per planned action) of one EnvRunner planning for RUNNER_TASKS x 2 envs."""
    import torch  # noqa: F401

    from agents.config import make_agent_config
    from agents.policy import PlanningPolicy
    from bench.common import count_flops
    from distributed.env_runner import EnvRunner
    from envs import load_task_set

    mt80 = load_task_set("mt80")
    cfg = make_agent_config(
        obs_dim=mt80.max_obs_dim,
        action_dim=mt80.max_action_dim,
        episode_lengths=[t.episode_length for t in mt80.tasks],
        model_size=size,
    )
    policy = PlanningPolicy(cfg, torch.as_tensor(mt80.action_masks()))
    runner = EnvRunner(policy, mt80, RUNNER_TASKS, envs_per_task=2, seed=0)
    runner.collect(2, False)  # warm-up: envs built, first plans
    t = time.perf_counter()
    _, stats = runner.collect(steps, False)
    rate = stats["collected"] / (time.perf_counter() - t)
    obs = torch.zeros(1, mt80.max_obs_dim)
    state = policy.new_planner_state(1, seed=0)
    flops = count_flops(lambda: policy.act(obs, torch.zeros(1, dtype=torch.long), state, eval_mode=False))
    runner.close()
    return rate, flops / 1e9


def shard_rates(rows: int) -> tuple[float, float]:
    """(transitions/s inserted, batches/s sampled) of one shard on local disk."""
    import numpy as np

    from bench.replay import fill, rate
    from distributed.replay.reader import ShardReader

    with tempfile.TemporaryDirectory(prefix="capacity") as d:
        inserted = fill(Path(d) / "s", rows, durable=True)
        reader, rng = ShardReader(Path(d) / "s"), np.random.default_rng(0)
        sampled = rate(lambda: reader.sample(256, 3, rng))
    return inserted, sampled


def update_rate(size: str, batch: int) -> tuple[float, float]:
    """(updates/s, GFLOP per update) of one Agent at `batch` windows of horizon 3 (mt80's dims)."""
    import torch  # noqa: F401

    from agents.agent import Agent
    from agents.batch import Batch
    from agents.config import make_agent_config
    from bench.common import count_flops, timed

    H = 3
    agent = Agent(make_agent_config(obs_dim=39, action_dim=6, episode_lengths=[500] * 80, model_size=size))
    b = Batch(
        obs=torch.randn(H + 1, batch, 39),
        action=torch.rand(H, batch, 6) * 2 - 1,
        reward=torch.randn(H, batch),
        terminated=torch.zeros(H, batch),
        task=torch.randint(0, 80, (batch,)),
        action_mask=torch.ones(batch, 6),
    )
    flops = count_flops(lambda: agent.update(b))
    return 1 / timed(lambda: agent.update(b), reps=3), flops / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["1", "5"])
    p.add_argument("--preset", default="cluster", help="configs/preset/<name>.yaml whose sizes are scaled to")
    p.add_argument("--runner-steps", type=int, default=20)
    p.add_argument("--shard-rows", type=int, default=300_000)
    args = p.parse_args()

    import torch  # noqa: F401

    from agents.host import use_cpu_share
    from bench.common import machine_line, matmul_gflops
    from distributed.config import compose

    use_cpu_share(1)  # what a runner or learner process with one CPU does at start
    print(machine_line(matmul_gflops()), flush=True)
    # the preset's sizes only: its devices are the cluster's (CUDA), this machine has none
    cfg = compose("mt80", [f"preset={args.preset}", "device=cpu", "runner_device=cpu", "precision=fp32"])
    per_rank = cfg.batch_size // cfg.num_learners
    inserted, sampled = shard_rates(args.shard_rows)
    print(f"shard: {inserted:.0f} transitions/s inserted, {sampled:.0f} batches/s sampled (256 x 4 rows)", flush=True)
    rows = []
    for size in args.sizes:
        steps_s, plan_gf = runner_rate(size, args.runner_steps)
        ups, upd_gf = update_rate(size, per_rank)
        ups256, _ = update_rate(size, 256)
        print(
            f"model {size}M: runner {steps_s:.2f} agent steps/s per CPU ({plan_gf:.1f} GFLOP per planned action); "
            f"learner {ups:.2f} updates/s at batch {per_rank} ({upd_gf:.1f} GFLOP), {ups256:.2f} at batch 256",
            flush=True,
        )
        rows.append((size, steps_s, ups))
    print(
        f"\npreset {args.preset}: {cfg.num_runners} runners x {cfg.cpus_per_runner:g} CPUs, {cfg.shards} shards, "
        f"{cfg.num_learners} learners, batch {cfg.batch_size} (per rank {per_rank}), utd {cfg.utd:g} updates per "
        f"env step (model {cfg.model_size}M in the preset)"
    )
    print(
        f"{'model':>5} {'env steps/s':>12} {'inserts/s':>10} {'shard in':>9} {'updates/s':>10} {'learners':>9} "
        f"{'batches/s':>10} {'shard out':>10}  limits first"
    )
    for size, steps_s, ups in rows:
        env = steps_s * cfg.num_runners * cfg.cpus_per_runner  # as if runner throughput scaled with its CPUs
        need_updates = env * cfg.utd  # what the update-to-data ratio asks of the learner group
        # data parallel: every rank does one per-rank update per group update (all-reduce not counted)
        learner_load = need_updates / ups
        shard_in = env / (inserted * cfg.shards)
        shard_out = need_updates * cfg.num_learners * (per_rank / 256) / (sampled * cfg.shards)
        loads = {"learners": learner_load, "shards (inserts)": shard_in, "shards (sampling)": shard_out}
        first = max(loads, key=loads.get)
        print(
            f"{size:>5} {env:12.0f} {env:10.0f} {shard_in:9.3f} {need_updates:10.1f} {learner_load:9.2f} "
            f"{need_updates * cfg.num_learners:10.0f} {shard_out:10.4f}  {first} ({loads[first]:.2f}x)"
        )
    print(
        "(shard in / out: demand over the preset's shards' supply; learners: the updates/s the ratio asks for over "
        "what one rank does, above 1 the runners outpace the learners and the rate limiter holds them back)"
    )


if __name__ == "__main__":
    main()
