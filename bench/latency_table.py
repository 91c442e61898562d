"""The latency/return table: planner settings x tasks -> return, per-step latency p50/p99,
deadline misses, and each setting's return and latency relative to the first one.

    python -m bench.latency_table [checkpoint=dir] [tasks=a,b,c] [settings=h3-i6-n512-fp32,...]
        [episodes=1] [max_steps=N] [budget_ms=20] [updates=60] [seed=0] [max_delta=0.2]

Without a checkpoint it fits a tiny model for `updates` steps on random-action episodes of
`tasks` (a quick, weak model: the latencies are real, the returns are not a trained agent's).
Latency is the planner's own per-step time for one environment (batch of 1).
`max_delta` gives every task the rate limit |a_t - a_{t-1}| <= max_delta (a checkpoint's own
constraints otherwise): the table then counts violations, and settings ending in `-free` (e.g.
`h3-i6-n512-fp32-free`) plan without the limit, to show its cost in return.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")

DEFAULTS = dict(
    checkpoint=None,
    tasks="cartpole-balance,cartpole-swingup,pendulum-swingup,reacher-easy",
    settings="h3-i6-n512-fp32,h1-i6-n512-fp32,h6-i6-n512-fp32,h3-i12-n512-fp32,h3-i6-n512-bf16,"
    "h3-i6-n128-fp32,h3-i12-n512-fp32-d10",
    episodes="1",
    max_steps=None,
    budget_ms="20",
    updates="60",
    seed="0",
    max_delta=None,
)


def main(argv: list[str]) -> dict:
    import numpy as np
    import torch

    import envs
    from agents.agent import Agent
    from agents.checkpoint import agent_from_checkpoint
    from agents.config import make_agent_config
    from agents.diagnostics import fit_on_episodes, format_table, latency_return_table, parse_setting, random_episodes

    a = _parse(argv)
    torch.set_num_threads(1)
    if a["checkpoint"]:
        agent, extra = agent_from_checkpoint(a["checkpoint"])
        task_set = envs.load_task_set(extra.get("task_set") or a["tasks"])
    else:
        task_set = envs.load_task_set(a["tasks"])
        masks = task_set.action_masks()
        cfg = make_agent_config(
            obs_dim=task_set.max_obs_dim,
            action_dim=task_set.max_action_dim,
            episode_lengths=list(task_set.episode_lengths()),
            model_size="tiny",
        )
        torch.manual_seed(int(a["seed"]))
        agent = Agent(cfg, torch.as_tensor(masks))
        env_fn = lambda t, s: envs.make_padded_env(task_set, t, s)  # noqa: E731
        eps = {n: random_episodes(env_fn, n, i, masks[i], seed=i) for i, n in enumerate(task_set.names)}
        fit_on_episodes(agent, eps, updates=int(a["updates"]))
    if a["max_delta"]:
        from dataclasses import replace

        from agents.config import ActionConstraints

        agent.cfg = replace(
            agent.cfg,
            constraints=tuple(
                ActionConstraints(max_delta=(float(a["max_delta"]),)).resolved(t.name, t.action_dim)
                for t in task_set.tasks
            ),
        )
    names = [n for n in a["tasks"].split(",") if n in task_set.names] or list(task_set.names)
    env_fn = lambda t, s: envs.make_padded_env(task_set, t, s)  # noqa: E731
    settings = [parse_setting(s) for s in a["settings"].split(",")]
    table = latency_return_table(
        agent,
        env_fn,
        {n: task_set.index(n) for n in names},
        settings,
        episodes=int(a["episodes"]),
        budget_ms=float(a["budget_ms"]),
        seed=int(a["seed"]),
        max_steps=int(a["max_steps"]) if a["max_steps"] else None,
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(format_table(table["rows"]))
    print()
    print("| setting | mean return | return / ref | p50 latency / ref | miss rate |\n|---|---:|---:|---:|---:|")
    for t in table["tradeoff"]:
        print(
            f"| {t['setting']} | {t['return_mean']:.1f} | {t['return_ratio']:.3f} | {t['latency_ratio']:.2f} | "
            f"{t['deadline_miss_rate']:.3f} |"
        )
    print(
        f"\nbudget {a['budget_ms']} ms; torch threads {torch.get_num_threads()}; "
        f"{'checkpoint ' + a['checkpoint'] if a['checkpoint'] else 'fresh tiny model'}; "
        f"all-step p50 {np.median([r['latency_p50_ms'] for r in table['rows']]):.2f} ms"
    )
    return table


def _parse(argv: list[str]) -> dict:
    import difflib

    args = dict(DEFAULTS)
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in DEFAULTS:
            raise SystemExit(
                f"bad argument {item!r}; keys: {sorted(DEFAULTS)} "
                f"(closest: {difflib.get_close_matches(key, DEFAULTS, n=2)})"
            )
        args[key] = value
    return args


if __name__ == "__main__":
    main(sys.argv[1:])
