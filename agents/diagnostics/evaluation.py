"""Real episodes with the planner in the loop, per-step latency, and the latency/return table.

The environment comes in as a factory `env_fn(task_name, seed)` returning a Gymnasium-style
env over padded observations/actions (`envs.make_padded_env` bound to a task set), so this
module never imports an environment package.

The table answers the seed's question ("+8% reward at 2x latency?") with one row per
(planner setting, task): return, per-step planning latency p50/p99 and the fraction of
steps that missed the control budget; a setting with `deadline_ms` shows what the slower
planner is worth once it is forced to act in time. For an agent with action constraints, every
row counts the executed actions that break them (must be 0), and a setting ending in `-free`
plans without them: its return against the same setting's constrained one is what they cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from agents.config import PlannerConfig
from agents.planner import ConstraintTable, PlannerState, plan_batch


@dataclass(frozen=True)
class PlannerSetting:
    """One column of the latency/return table. None keeps the agent's own value."""

    name: str
    horizon: int | None = None
    iterations: int | None = None
    num_samples: int | None = None
    precision: str | None = None  # "fp32" | "bf16"
    deadline_ms: float | None = None  # planner stops refining at this budget
    constrained: bool = True  # False ("-free"): plan without the agent's action constraints

    def planner_config(self, base: PlannerConfig) -> PlannerConfig:
        n = self.num_samples or base.num_samples
        # keep elites / policy trajectories valid when the sample count shrinks
        return replace(
            base,
            horizon=self.horizon or base.horizon,
            iterations=self.iterations or base.iterations,
            num_samples=n,
            num_elites=min(base.num_elites, max(1, n // 8)),
            num_pi_trajs=min(base.num_pi_trajs, n // 4),
            deadline_ms=self.deadline_ms,
        )

    def autocast_dtype(self, default: torch.dtype | None) -> torch.dtype | None:
        if self.precision is None:
            return default
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        return torch.bfloat16 if self.precision == "bf16" else None


def parse_setting(text: str) -> PlannerSetting:
    """'h3-i6-n512-fp32[-d20][-free]' -> PlannerSetting (h horizon, i iterations, n samples, d deadline
    ms, free: without the agent's action constraints)."""
    fields: dict = {"name": text}
    for part in text.split("-"):
        if part == "free":
            fields["constrained"] = False
        elif part in ("fp32", "bf16"):
            fields["precision"] = part
        elif part[:1] in "hind" and part[1:].replace(".", "", 1).isdigit():
            key = {"h": "horizon", "i": "iterations", "n": "num_samples", "d": "deadline_ms"}[part[0]]
            fields[key] = float(part[1:]) if key == "deadline_ms" else int(part[1:])
        else:
            raise ValueError(
                f"bad planner setting part {part!r} in {text!r}; use e.g. 'h3-i6-n512-fp32-d20' "
                f"(add '-free' to plan without action constraints)"
            )
    return PlannerSetting(**fields)


@torch.no_grad()
def run_episodes(
    agent,
    env_fn: Callable,
    task_name: str,
    task_id: int,
    *,
    episodes: int = 1,
    setting: PlannerSetting | None = None,
    seed: int = 0,
    max_steps: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[dict]:
    """Run `episodes` evaluation episodes of one task with the agent planning every step.

    Returns one dict per episode of numpy arrays: obs [T+1, O], action [T, A], reward [T],
    plan_value [T] (the planner's predicted return of the executed sequence), latency_ms [T],
    iterations [T], terminated [T] (1 at a step that ended the episode by termination, never for a
    time limit); plus "return" (float) and "task_id"; for an agent with action constraints also
    "violations" (executed steps breaking them; the planner obeys them unless the setting is free).
    """
    setting = setting or PlannerSetting("default")
    pcfg = setting.planner_config(agent.cfg.planner)
    amp = setting.autocast_dtype(agent.autocast_dtype)
    task = torch.tensor([task_id], dtype=torch.long, device=agent.device)
    table = (
        None
        if agent.cfg.constraints is None
        else ConstraintTable(agent.cfg.constraints, agent.cfg.model.action_dim, agent.device)
    )
    constraints = table.for_rows(task) if table is not None and setting.constrained else None
    out = []
    for ep in range(episodes):
        env = env_fn(task_name, seed + ep)
        obs, _ = env.reset(seed=seed + ep)
        state = PlannerState.create(1, pcfg.horizon, agent.cfg.model.action_dim, seed=seed + ep, device=agent.device)
        rec = {k: [] for k in ("obs", "action", "reward", "terminated", "plan_value", "latency_ms", "iterations")}
        rec["obs"].append(np.asarray(obs, dtype=np.float32))
        steps, violations, prev = 0, 0, None
        while True:
            o = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=agent.device).unsqueeze(0)
            action, info = plan_batch(
                agent.model,
                o,
                task,
                state,
                pcfg,
                agent.discounts,
                eval_mode=True,
                autocast_dtype=amp,
                clock=clock,
                constraints=constraints,
            )
            if table is not None:
                violations += int(
                    table.violations(task, action, action if prev is None else prev, torch.tensor([prev is not None]))[
                        0
                    ]
                )
                prev = action
            a = action[0].float().cpu().numpy()
            obs, reward, terminated, truncated, _ = env.step(a)
            steps += 1
            rec["obs"].append(np.asarray(obs, dtype=np.float32))
            rec["action"].append(a)
            rec["reward"].append(float(reward))
            rec["terminated"].append(float(terminated))
            rec["plan_value"].append(float(info.chosen_value[0]))
            rec["latency_ms"].append(info.elapsed_ms)
            rec["iterations"].append(info.iterations)
            if terminated or truncated or (max_steps is not None and steps >= max_steps):
                break
        close = getattr(env, "close", None)
        if close is not None:
            close()
        ep_out: dict[str, Any] = {k: np.asarray(v, dtype=np.float32) for k, v in rec.items()}
        ep_out["return"] = float(ep_out["reward"].sum())
        ep_out["task_id"] = task_id
        if table is not None:
            ep_out["violations"] = violations
        out.append(ep_out)
    return out


def latency_summary(latency_ms: np.ndarray, budget_ms: float | None) -> dict[str, float]:
    """p50/p99/max of per-step latencies [T] and the fraction of steps over `budget_ms`."""
    lat = np.asarray(latency_ms, dtype=np.float64)
    out = {
        "latency_p50_ms": float(np.percentile(lat, 50)),
        "latency_p99_ms": float(np.percentile(lat, 99)),
        "latency_max_ms": float(lat.max()),
        "steps": int(lat.size),
    }
    out["deadline_miss_rate"] = float((lat > budget_ms).mean()) if budget_ms is not None else float("nan")
    return out


def latency_return_table(
    agent,
    env_fn: Callable,
    tasks: dict[str, int],
    settings: list[PlannerSetting],
    *,
    episodes: int = 1,
    budget_ms: float | None = None,
    seed: int = 0,
    max_steps: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Evaluate every (setting, task): tasks maps name -> task id. Misses count steps over
    `budget_ms` (the control period; a setting's deadline_ms if budget_ms is None): a planner
    deadline must sit below the control budget by the cost of one iteration. Returns {"rows": [...],
    "settings": [...], "budget_ms", "tradeoff": per setting vs the first one (return ratio,
    latency ratio, miss rate), "episode_data": {(setting, task): episodes} (not JSON; dropped
    by the report)}."""
    rows, episodes_by_key = [], {}
    for s in settings:
        for name, tid in tasks.items():
            eps = run_episodes(agent, env_fn, name, tid, episodes=episodes, setting=s, seed=seed, max_steps=max_steps)
            episodes_by_key[(s.name, name)] = eps
            rets = np.array([e["return"] for e in eps])
            lat = latency_summary(
                np.concatenate([e["latency_ms"] for e in eps]), budget_ms if budget_ms is not None else s.deadline_ms
            )
            rows.append(
                {
                    "setting": s.name,
                    "task": name,
                    "return_mean": float(rets.mean()),
                    "return_std": float(rets.std()),
                    "episodes": len(eps),
                    "iterations_mean": float(np.concatenate([e["iterations"] for e in eps]).mean()),
                    **lat,
                    **(
                        {"constraint_violations": int(sum(e["violations"] for e in eps))}
                        if "violations" in eps[0]
                        else {}
                    ),
                }
            )
            if progress is not None:
                progress(f"{s.name} {name}: return {rets.mean():.1f} p50 {lat['latency_p50_ms']:.1f} ms")
    return {
        "rows": rows,
        "settings": [asdict(s) for s in settings],
        "budget_ms": budget_ms,
        "tradeoff": tradeoff(rows),
        "episode_data": episodes_by_key,
    }


def tradeoff(rows: list[dict]) -> list[dict]:
    """Per setting, relative to the first setting: return ratio (task-mean return over the
    reference's task-mean return, robust to tasks the reference scores ~0 on), mean over tasks
    of the p50 latency ratio, mean miss rate."""
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    if not settings:
        return []
    by = {(r["setting"], r["task"]): r for r in rows}
    ref = settings[0]
    tasks = [r["task"] for r in rows if r["setting"] == ref]
    out = []
    for s in settings:
        both = [t for t in tasks if (s, t) in by]
        ref_mean = np.mean([by[(ref, t)]["return_mean"] for t in both]) if both else 0.0
        ratio = np.mean([by[(s, t)]["return_mean"] for t in both]) / ref_mean if abs(ref_mean) > 1e-9 else np.nan
        lat = [by[(s, t)]["latency_p50_ms"] / max(by[(ref, t)]["latency_p50_ms"], 1e-9) for t in tasks if (s, t) in by]
        miss = [by[(s, t)]["deadline_miss_rate"] for t in tasks if (s, t) in by]
        out.append(
            {
                "setting": s,
                "return_ratio": float(ratio),
                "latency_ratio": float(np.mean(lat)),
                "deadline_miss_rate": float(np.nanmean(miss)) if not all(np.isnan(miss)) else float("nan"),
                "return_mean": float(np.mean([by[(s, t)]["return_mean"] for t in tasks if (s, t) in by])),
            }
        )
    return out


def format_table(rows: list[dict]) -> str:
    """The latency/return table as Markdown (one line per setting x task)."""
    counted = any("constraint_violations" in r for r in rows)  # an agent with action constraints
    head = "| setting | task | return | p50 ms | p99 ms | miss rate | iters |" + (" violations |" if counted else "")
    lines = [head, "|---|---|---:|---:|---:|---:|---:|" + ("---:|" if counted else "")]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['task']} | {r['return_mean']:.1f} ± {r['return_std']:.1f} | "
            f"{r['latency_p50_ms']:.2f} | {r['latency_p99_ms']:.2f} | {r['deadline_miss_rate']:.2f} | "
            f"{r['iterations_mean']:.1f} |" + (f" {r.get('constraint_violations', '-')} |" if counted else "")
        )
    return "\n".join(lines)


def random_episodes(
    env_fn: Callable, task_name: str, task_id: int, action_mask: np.ndarray, *, episodes: int = 1, seed: int = 0
) -> list[dict]:
    """Uniform random-action episodes (padded dims 0), in the same format as run_episodes
    (without plan_value/latency): the data for a quick model in tests and benchmarks."""
    rng = np.random.default_rng(seed)
    mask = np.asarray(action_mask, dtype=np.float32)
    out = []
    for ep in range(episodes):
        env = env_fn(task_name, seed + ep)
        obs, _ = env.reset(seed=seed + ep)
        rec = {"obs": [np.asarray(obs, np.float32)], "action": [], "reward": [], "terminated": []}
        while True:
            a = rng.uniform(-1, 1, mask.shape).astype(np.float32) * mask
            obs, reward, terminated, truncated, _ = env.step(a)
            rec["obs"].append(np.asarray(obs, np.float32))
            rec["action"].append(a)
            rec["reward"].append(float(reward))
            rec["terminated"].append(float(terminated))
            if terminated or truncated:
                break
        if hasattr(env, "close"):
            env.close()
        ep_out: dict[str, Any] = {k: np.asarray(v, dtype=np.float32) for k, v in rec.items()}
        ep_out["return"], ep_out["task_id"] = float(ep_out["reward"].sum()), task_id
        out.append(ep_out)
    return out


def windows_from_episodes(
    episodes: list[dict], horizon: int, batch_size: int, action_mask: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Replay-style sample (agents/batch.py keys) of `batch_size` random (horizon+1)-step
    windows from episodes of one task: obs [H+1, B, O], action [H, B, A], reward [H, B],
    terminated [H, B], task [B], action_mask [B, A]."""
    eps = [e for e in episodes if len(e["action"]) >= horizon]
    if not eps:
        raise ValueError(f"no episode has {horizon} steps")
    which = rng.integers(len(eps), size=batch_size)
    obs, act, rew, term = [], [], [], []
    for i in which:
        e = eps[i]
        s = int(rng.integers(len(e["action"]) - horizon + 1))
        obs.append(e["obs"][s : s + horizon + 1])
        act.append(e["action"][s : s + horizon])
        rew.append(e["reward"][s : s + horizon])
        # a window that ends the episode by termination carries it (the termination calibration's events)
        term.append(e.get("terminated", np.zeros(len(e["action"]), np.float32))[s : s + horizon])
    tid = int(eps[0]["task_id"])
    return {
        "obs": np.stack(obs, 1),
        "action": np.stack(act, 1),
        "reward": np.stack(rew, 1),
        "terminated": np.stack(term, 1).astype(np.float32),
        "task": np.full(batch_size, tid, np.int64),
        "action_mask": np.repeat(np.asarray(action_mask, np.float32)[None], batch_size, 0),
    }


def fit_on_episodes(
    agent, episodes_by_task: dict[str, list[dict]], *, updates: int, batch_size: int = 64, seed: int = 0
) -> list[dict[str, float]]:
    """A quick offline fit of `agent` on fixed episodes (task-balanced batches): enough to get
    a small non-trivial model for tests and benchmarks; not the trainer."""
    from agents.batch import Batch

    rng = np.random.default_rng(seed)
    masks = agent.model.action_masks.cpu().numpy()
    names = list(episodes_by_task)
    H = agent.cfg.planner.horizon
    per = max(1, batch_size // len(names))
    stats = []
    for _ in range(updates):
        parts = [
            windows_from_episodes(episodes_by_task[n], H, per, masks[int(episodes_by_task[n][0]["task_id"])], rng)
            for n in names
        ]
        batch = {
            k: np.concatenate([p[k] for p in parts], axis=0 if k in ("task", "action_mask") else 1) for k in parts[0]
        }
        stats.append(agent.update(Batch.from_numpy(batch, agent.device)))
    return stats
