"""Collection throughput of EnvRunner actors (weak scaling) and their overhead.

Each runner gets its own `--tasks-per-runner` tasks (mt80 order) and plans for all of them in one
batched call per step (tiny model, reduced planner unless --reference). Prints, for 1..N runners:
total agent steps/s, the speed-up over one runner, and the runners' overhead = wall time inside
collect over (simulation + planning) time.

    python bench/collection.py [--runners 1 2] [--tasks-per-runner 8] [--steps 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("MUJOCO_GL", "egl")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runners", nargs="+", type=int, default=[1, 2])
    p.add_argument("--tasks-per-runner", type=int, default=8)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--task-set", default="mt80")
    p.add_argument("--reference", action="store_true", help="model 1M, reference planner")
    args = p.parse_args()

    import ray

    from agents.config import make_agent_config
    from distributed.actors import actor_classes
    from envs import load_task_set

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    C = actor_classes()
    full = load_task_set(args.task_set)
    planner = {} if args.reference else dict(iterations=2, num_samples=64, num_elites=8, num_pi_trajs=8)
    print(
        f"{'runners':>7} {'tasks':>5} {'steps/s':>9} {'speed-up':>8} {'plan ms/step':>12} {'sim ms/step':>11} "
        f"{'overhead':>8}"
    )
    base = None
    for n in args.runners:
        names = list(full.names[: n * args.tasks_per_runner])
        ts = load_task_set(",".join(names))
        cfg = make_agent_config(
            obs_dim=ts.max_obs_dim,
            action_dim=ts.max_action_dim,
            episode_lengths=[t.episode_length for t in ts.tasks],
            model_size="1" if args.reference else "tiny",
            planner=planner,
        )
        shard_names = [f"bench-collection-{os.getpid()}-{n}-{i}" for i in range(n)]
        shards = [
            C["shard"]
            .options(num_cpus=0, name=shard_names[i])
            .remote(f"/tmp/{shard_names[i]}", obs_dim=ts.max_obs_dim, action_dim=ts.max_action_dim, durable=False)
            for i in range(n)
        ]
        runners = [
            C["runner"]
            .options(num_cpus=1)
            .remote(
                cfg,
                ",".join(names),
                names[i * args.tasks_per_runner : (i + 1) * args.tasks_per_runner],
                shard_names[i],
                envs_per_task=1,
                seed=0,
                runner_id=i,
                torch_threads=1,
                max_episode_steps=None,
            )
            for i in range(n)
        ]
        ray.get([r.collect.remote(2, False) for r in runners])  # warm-up
        t = time.perf_counter()
        stats = ray.get([r.collect.remote(args.steps, False) for r in runners])
        wall = time.perf_counter() - t
        steps = sum(args.steps * args.tasks_per_runner for _ in runners)
        rate = steps / wall
        base = base or rate
        plan = sum(s["plan_s"] for s in stats) / sum(s["steps"] for s in stats) * 1e3
        sim = sum(s["sim_s"] for s in stats) / sum(s["steps"] for s in stats) * 1e3
        overhead = sum(s["call_s"] for s in stats) / sum(s["plan_s"] + s["sim_s"] for s in stats)
        print(
            f"{n:>7} {len(names):>5} {rate:9.1f} {rate / base:8.2f} {plan:12.1f} {sim:11.1f} {overhead:8.3f}",
            flush=True,
        )
        for a in runners + shards:
            ray.kill(a)
    ray.shutdown()


if __name__ == "__main__":
    main()
