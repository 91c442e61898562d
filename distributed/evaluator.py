"""Evaluation: N episodes per task, all tasks' envs planned together in one batch per step,
eval-mode actions; per-task return / success, TD-MPC2's normalized score, and per-step
planner latency (p50/p99, deadline misses)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from distributed.storage import StoragePath


def normalized_score(per_task: dict[str, dict], domains: dict[str, str]) -> float | None:
    """TD-MPC2's score: dm_control return / 10, Meta-World success x 100, averaged over tasks
    of those two domains (None if there are none)."""
    scores = [
        row["return"] / 10.0 if domains[name] == "dmc" else row["success"] * 100.0
        for name, row in per_task.items()
        if domains[name] in ("dmc", "metaworld")
    ]
    return float(np.mean(scores)) if scores else None


def evaluate(
    agent,
    task_set,
    tasks: list[str] | None = None,
    *,
    episodes: int = 1,
    seed: int = 0,
    planner_cfg=None,
    max_steps: int | None = None,
) -> dict:
    """Run `episodes` episodes of each task (default: the whole set) with eval-mode planning by
    `agent` (an Agent or a PlanningPolicy).

    Returns {"tasks": {name: {"return", "success", "length", "episodes"}}, "normalized_score",
    "latency_ms": {"p50", "p99", "mean"}, "deadline_misses", "plan_calls", "wall_s"}.
    `max_steps` caps every episode (for quick smoke evaluations).
    """
    tasks = list(tasks or task_set.names)
    pcfg = planner_cfg or agent.cfg.planner
    n = len(tasks) * episodes
    state = agent.new_planner_state(n, seed=10_000 + seed)

    def act(obs: np.ndarray, task_ids: np.ndarray, rows: list[int]) -> np.ndarray:
        sub = state.select(rows)
        actions, _ = agent.act(
            torch.from_numpy(obs), torch.as_tensor(task_ids, dtype=torch.long), sub, eval_mode=True, planner_cfg=pcfg
        )
        for key in ("prev_mean", "has_prev", "prev_action", "has_prev_action"):  # the rows' state, back in place
            getattr(state, key)[rows] = getattr(sub, key)
        return actions.numpy()

    table = (agent.policy() if isinstance(getattr(agent, "policy", None), Callable) else agent).constraints
    return evaluate_policy(
        act,
        task_set,
        tasks,
        episodes=episodes,
        seed=seed,
        max_steps=max_steps,
        deadline_ms=pcfg.deadline_ms,
        violations_fn=None if table is None else table.violations,
    )


class Evaluator:
    """Evaluates a planning policy on the tasks of a set; given weights (a Ray evaluator actor's
    published copy) are loaded first, None means the policy shares the learner's model."""

    def __init__(self, policy, task_set):
        self.policy, self.task_set = policy, task_set

    def evaluate(self, weights, version: int, *, tasks: list[str] | None = None, **kw) -> dict:
        if weights is not None:
            self.policy.load_weights(weights, version)
        return {**evaluate(self.policy, self.task_set, tasks, **kw), "weights_version": version}


def evaluate_policy(
    act_fn,
    task_set,
    tasks: list[str] | None = None,
    *,
    episodes: int = 1,
    seed: int = 0,
    max_steps: int | None = None,
    deadline_ms: float | None = None,
    violations_fn=None,
) -> dict:
    """The evaluation protocol of every policy, ours or a baseline's: `episodes` episodes of each
    task, env k of a task seeded `seed * 7919 + k`, all still-running episodes batched per step.

    `act_fn(obs [m, max_obs_dim] float32, task_ids [m] int64, rows: list[int]) -> actions
    [m, max_action_dim]` gets the padded observations of the running episodes (`rows` index
    them among all n = len(tasks) x episodes episodes, for policies that keep per-episode state)
    and returns padded actions in [-1, 1]. The result is `evaluate`'s; `plan_calls` counts
    `act_fn` calls and `deadline_misses` those slower than `deadline_ms`.
    `violations_fn(task_ids [m], actions [m, A], previous actions [m, A], has_previous [m] bool) -> [m] bool`
    (a constrained policy's ConstraintTable.violations) adds "constraint_violations": {"total", "steps",
    per-task counts under "tasks"} (steps whose action broke a bound or rate limit; must be 0).
    """
    from envs import make_padded_env

    tasks = list(tasks or task_set.names)
    names = [name for name in tasks for _ in range(episodes)]
    envs = [make_padded_env(task_set, name, seed=seed * 7919 + i % episodes) for i, name in enumerate(names)]
    task_ids = np.asarray([task_set.index(name) for name in names], dtype=np.int64)
    n = len(envs)
    obs = np.stack([env.reset(seed=seed * 7919 + i % episodes)[0] for i, env in enumerate(envs)]).astype(np.float32)
    returns, success, lengths = np.zeros(n), np.zeros(n), np.zeros(n, int)
    active = list(range(n))
    latencies, misses, start = [], 0, time.perf_counter()
    last_action = np.zeros((n, task_set.max_action_dim), np.float32)
    violations = np.zeros(n, np.int64)
    while active:
        t0 = time.perf_counter()
        act = np.asarray(act_fn(obs[active], task_ids[active], active), dtype=np.float32)
        latencies.append((time.perf_counter() - t0) * 1e3)
        if deadline_ms is not None and latencies[-1] > deadline_ms:
            misses += 1
        if violations_fn is not None:
            has_last = torch.as_tensor(lengths[active] > 0)
            bad = violations_fn(
                torch.as_tensor(task_ids[active]),
                torch.from_numpy(act),
                torch.from_numpy(last_action[active]),
                has_last,
            )
            violations[active] += np.asarray(bad.cpu(), np.int64)
            last_action[active] = act
        still = []
        for j, i in enumerate(active):
            o, r, term, trunc, info = envs[i].step(act[j])
            obs[i] = o
            returns[i] += r
            lengths[i] += 1
            success[i] = max(success[i], float(info.get("success", 0.0)))
            if not (term or trunc or (max_steps is not None and lengths[i] >= max_steps)):
                still.append(i)
        active = still
    for env in envs:
        env.close()
    rows_of = {name: [i for i in range(n) if names[i] == name] for name in tasks}
    per_task = {
        name: {
            "return": float(returns[idx].mean()),
            "success": float(success[idx].mean()),
            "length": float(lengths[idx].mean()),
            "episodes": len(idx),
        }
        for name, idx in rows_of.items()
    }
    domains = {t.name: t.domain for t in task_set.tasks}
    lat = np.asarray(latencies)
    return {
        "tasks": per_task,
        "normalized_score": normalized_score(per_task, domains),
        "latency_ms": {
            "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)),
            "mean": float(lat.mean()),
        },
        "deadline_misses": misses,
        "plan_calls": len(latencies),
        "wall_s": time.perf_counter() - start,
        **(
            {
                "constraint_violations": {
                    "total": int(violations.sum()),
                    "steps": int(lengths.sum()),
                    "tasks": {t: int(violations[idx].sum()) for t, idx in rows_of.items()},
                }
            }
            if violations_fn is not None
            else {}
        ),
    }


def eval_row(result: dict, **extra) -> dict:
    """The metrics.jsonl "eval" row of an evaluation result, one shape for every run (ours and
    the baselines'): mean `episode_return`, policy latency, `return/<task>`, `success/<task>`,
    and `normalized_score` when the tasks have one; `extra` (e.g. updates) is added."""
    per_task = result["tasks"]
    row = {
        "episode_return": float(np.mean([r["return"] for r in per_task.values()])),
        **extra,
        "latency_p50_ms": result["latency_ms"]["p50"],
        "latency_p99_ms": result["latency_ms"]["p99"],
        **{f"return/{k}": v["return"] for k, v in per_task.items()},
        **{f"success/{k}": v["success"] for k, v in per_task.items()},
    }
    row["normalized_score"] = result["normalized_score"]  # null for task sets without one: same keys everywhere
    if "constraint_violations" in result:  # constrained runs only
        row["constraint_violations"] = result["constraint_violations"]["total"]
    return row


def write_eval_table(
    run_dir: StoragePath,
    result: dict,
    domains: dict,
    env_steps: int,
    policy: str = "planner",
    notes: list[str] | None = None,
) -> None:
    """Per-task evaluation as eval.md and eval.csv, plus a bar chart eval_tasks.png (`policy`
    names what acted, for the latency line)."""
    rows = [(k, domains[k], v["return"], v["success"], v["episodes"]) for k, v in result["tasks"].items()]
    table = io.StringIO(newline="")  # built in memory: one write also on an object store (no appends there)
    w = csv.writer(table)
    w.writerow(["task", "domain", "return", "success", "episodes"])
    w.writerows(rows)
    (run_dir / "eval.csv").write_text(table.getvalue(), newline="")
    lines = [
        f"# Evaluation at {env_steps} env steps",
        "",
        f"normalized score (TD-MPC2's, 0-100: dm_control return / 10, Meta-World success %): "
        f"{result['normalized_score']}",
        "",
        f"{policy} latency per step (all tasks batched): p50 {result['latency_ms']['p50']:.1f} ms, "
        f"p99 {result['latency_ms']['p99']:.1f} ms",
        "",
        *[line for n in notes or [] for line in (n, "")],
        *(
            [
                f"constraint violations (bounds or rate limit; must be 0): {result['constraint_violations']['total']} "
                f"in {result['constraint_violations']['steps']} steps",
                "",
            ]
            if "constraint_violations" in result
            else []
        ),
        "| task | domain | return | success | episodes |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [f"| {t} | {d} | {r:.1f} | {s:.2f} | {n} |" for t, d, r, s, n in rows]
    (run_dir / "eval.md").write_text("\n".join(lines) + "\n")
    from distributed.run_log import saved_figure

    scores = [r / 10 if d == "dmc" else s * 100 if d == "metaworld" else r for _, d, r, s, _ in rows]
    size = (max(6, 0.18 * len(rows)), 4)
    with saved_figure(run_dir / "eval_tasks.png", figsize=size, dpi=90, bbox="tight") as (_, ax):  # 80 long labels
        ax.bar(range(len(rows)), scores, color=["C0" if d == "dmc" else "C1" for _, d, *_ in rows])
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([t for t, *_ in rows], rotation=90, fontsize=6)
        ax.set_ylabel("normalized score (dmc: return/10, mw: success %)")
