"""Evaluation: N episodes per task, all tasks' envs planned together in one batch per step,
eval-mode actions; per-task return / success, TD-MPC2's normalized score, and per-step
planner latency (p50/p99, deadline misses)."""
from __future__ import annotations

import time

import numpy as np
import torch

from agents.agent import Agent


def normalized_score(per_task: dict[str, dict], domains: dict[str, str]) -> float | None:
    """TD-MPC2's score: dm_control return / 10, Meta-World success x 100, averaged over tasks
    of those two domains (None if there are none)."""
    scores = []
    for name, row in per_task.items():
        if domains[name] == "dmc":
            scores.append(row["return"] / 10.0)
        elif domains[name] == "metaworld":
            scores.append(row["success"] * 100.0)
    return float(np.mean(scores)) if scores else None


def evaluate(agent: Agent, task_set, tasks: list[str] | None = None, *, episodes: int = 1, seed: int = 0,
             planner_cfg=None, max_steps: int | None = None) -> dict:
    """Run `episodes` episodes of each task (default: the whole set) with eval-mode planning.

    Returns {"tasks": {name: {"return", "success", "length", "episodes"}}, "normalized_score",
    "latency_ms": {"p50", "p99", "mean"}, "deadline_misses", "plan_calls", "wall_s"}.
    `max_steps` caps every episode (for quick smoke evaluations).
    """
    from envs import make_padded_env

    tasks = list(tasks or task_set.names)
    pcfg = planner_cfg or agent.cfg.planner
    envs, task_ids, names = [], [], []
    for name in tasks:
        for k in range(episodes):
            envs.append(make_padded_env(task_set, name, seed=seed * 7919 + k))
            task_ids.append(task_set.index(name))
            names.append(name)
    n = len(envs)
    obs = np.stack([env.reset(seed=seed * 7919 + k % episodes)[0] for k, env in enumerate(envs)]).astype(np.float32)
    returns, success, lengths = np.zeros(n), np.zeros(n), np.zeros(n, int)
    active = list(range(n))
    state = agent.new_planner_state(n, seed=10_000 + seed)
    task_t = torch.as_tensor(task_ids, dtype=torch.long)
    latencies, misses, start = [], 0, time.perf_counter()
    while active:
        sub = state.select(active)
        t0 = time.perf_counter()
        act, _ = agent.act(torch.from_numpy(obs[active]), task_t[active], sub, eval_mode=True, planner_cfg=pcfg)
        latencies.append((time.perf_counter() - t0) * 1e3)
        if pcfg.deadline_ms is not None and latencies[-1] > pcfg.deadline_ms:
            misses += 1
        state.prev_mean[active] = sub.prev_mean
        state.has_prev[active] = sub.has_prev
        still = []
        for j, i in enumerate(active):
            o, r, term, trunc, info = envs[i].step(act[j].numpy())
            obs[i] = o
            returns[i] += r
            lengths[i] += 1
            success[i] = max(success[i], float(info.get("success", 0.0)))
            if not (term or trunc or (max_steps is not None and lengths[i] >= max_steps)):
                still.append(i)
        active = still
    for env in envs:
        env.close()
    per_task = {}
    for name in tasks:
        idx = [i for i in range(n) if names[i] == name]
        per_task[name] = {"return": float(returns[idx].mean()), "success": float(success[idx].mean()),
                          "length": float(lengths[idx].mean()), "episodes": len(idx)}
    domains = {t.name: t.domain for t in task_set.tasks}
    lat = np.asarray(latencies)
    return {"tasks": per_task, "normalized_score": normalized_score(per_task, domains),
            "latency_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                           "mean": float(lat.mean())},
            "deadline_misses": misses, "plan_calls": len(latencies), "wall_s": time.perf_counter() - start}
