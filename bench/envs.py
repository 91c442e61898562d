"""Environment throughput: per-task construction time and agent steps/s on one core.

    .venv/bin/python bench/envs.py                 # all of mt80, 200 agent steps each
    .venv/bin/python bench/envs.py --tasks gym-all --steps 500

Prints one row per task (build ms, agent steps/s, simulator steps/s = agent steps x action repeat)
and the total time to build every task of the set. Random actions; resets when an episode ends.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
# run as a script, this file's folder comes first on sys.path and its name would shadow the envs package
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="mt80", help="a task set name or comma-separated tasks")
    parser.add_argument("--steps", type=int, default=200, help="agent steps timed per task")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the figures promise

    t0 = time.perf_counter()
    from envs import load_task_set, make_env

    task_set = load_task_set(args.tasks)
    domains = {t.domain for t in task_set.tasks}
    for module, domain in (("dm_control.suite", "dmc"), ("metaworld", "metaworld"), ("gymnasium.envs.mujoco", "gym")):
        if domain in domains:
            __import__(module)
    import_s = time.perf_counter() - t0

    rng = np.random.default_rng(args.seed)
    rows, total_build = [], 0.0
    for spec in task_set.tasks:
        t0 = time.perf_counter()
        env = make_env(spec.name, seed=args.seed)
        build_s = time.perf_counter() - t0
        total_build += build_s
        env.reset(seed=args.seed)
        actions = rng.uniform(-1, 1, (args.steps, spec.action_dim)).astype(np.float32)
        t0 = time.perf_counter()
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        step_s = time.perf_counter() - t0
        env.close()
        rows.append(
            (spec.name, spec.domain, build_s * 1e3, args.steps / step_s, args.steps * spec.action_repeat / step_s)
        )

    print(f"{'task':32s} {'domain':9s} {'build ms':>9s} {'agent st/s':>11s} {'sim st/s':>10s}")
    for name, domain, build_ms, agent_sps, sim_sps in rows:
        print(f"{name:32s} {domain:9s} {build_ms:9.1f} {agent_sps:11.0f} {sim_sps:10.0f}")
    sps = np.array([r[3] for r in rows])
    print(f"\n{len(rows)} tasks of {args.tasks!r}, {args.steps} agent steps each, one core")
    print(f"simulator imports: {import_s:.2f} s (once per process)")
    print(f"build all {len(rows)}: {total_build:.2f} s total, {1e3 * total_build / len(rows):.1f} ms mean per task")
    print(
        f"agent steps/s: median {np.median(sps):.0f}, min {sps.min():.0f} ({rows[int(sps.argmin())][0]}), "
        f"max {sps.max():.0f} ({rows[int(sps.argmax())][0]})"
    )
    for domain in sorted(domains):
        d = np.array([r[3] for r in rows if r[1] == domain])
        print(f"  {domain:9s} median agent steps/s {np.median(d):.0f} over {len(d)} tasks")


if __name__ == "__main__":
    main()
