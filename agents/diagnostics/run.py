"""`run_diagnostics`: every per-task metric and planner audit for a set of tasks, from
replay-style windows (and, optionally, whole evaluation episodes), at a bounded cost.

Rank 0 of the learner calls it every K updates on held-out samples; `launch/diagnose.py`
calls it on a checkpoint. `scalars(results)` flattens it for wandb / metrics.jsonl.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.diagnostics import audits, dynamics, geometry

# per-task scalars that go to wandb / metrics.jsonl (the report shows more)
SCALAR_KEYS = (
    "effective_rank",
    "effective_rank_frac",
    "participation_ratio",
    "participation_ratio_frac",
    "spread",
    "knn_overlap",
    "knn_chance",
    "probe_r2",
    "probe_dims",
    "kstep_rel_error_1",
    "kstep_rel_error_last",
    "lipschitz_median",
    "lipschitz_max",
    "reward_r2",
    "reward_bias",
    "reward_mae",
    "reward_rollout_r2",
    "value_corr",
    "value_bias",
    "value_slope",
    "value_mae",
    "plan_value_corr",
    "elite_action_rms_small",
    "elite_action_rms_large",
    "elite_jaccard_small",
    "elite_seed_floor_action_rms",
    "horizon_action_rms_h1",
    "horizon_return_shift_2h",
    "warm_iters_to_ref",
    "cold_iters_to_ref",
    "termination_brier",
    "termination_bias",
    "termination_recall",
    "termination_false_alarm",
    "termination_rollout_recall",
    "termination_rollout_false_alarm",
    "termination_events",
)


def _t(x, device, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(device=device, dtype=dtype)


def infer_obs_dim(obs: torch.Tensor) -> int:
    """Unpadded observation dim of one task's padded obs [..., O]: one past the last column
    that is non-zero anywhere (padding is trailing zeros)."""
    nz = (obs.reshape(-1, obs.shape[-1]) != 0).any(0).nonzero()
    return int(nz.max()) + 1 if nz.numel() else obs.shape[-1]


def split_by_task(sample: Mapping[str, Any], names: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Split one mixed replay sample (agents/batch.py keys, e.g. a task-balanced
    `ShardReader.sample(..., balance="task")`) into {task name: sample of that task's rows};
    `names[i]` is task id i, tasks without rows are left out."""
    task = np.asarray(sample["task"])
    out = {}
    for i, name in enumerate(names):
        rows = np.nonzero(task == i)[0]
        if rows.size:
            out[name] = {
                k: (np.asarray(v)[rows] if k in ("task", "action_mask") else np.asarray(v)[:, rows])
                for k, v in sample.items()
            }
    return out


@torch.no_grad()
def task_metrics(
    agent,
    name: str,
    sample: Mapping[str, Any],
    *,
    obs_dim: int | None = None,
    episodes: list[dict] | None = None,
    max_samples: int = 512,
    audit_states: int = 16,
    knn_k: int = 10,
    lipschitz_rows: int = 64,
    run_audits: bool = True,
    horizons: tuple[int, ...] | None = None,
    ablation_iterations: int | None = None,
    seed: int = 0,
) -> dict:
    """All metrics of one task from a replay sample (obs [K+1, N, O], action [K, N, A],
    reward [K, N], task [N]) and optional evaluation episodes (see evaluation.run_episodes)."""
    m, dev = agent.model, agent.device
    obs = _t(sample["obs"], dev)[:, :max_samples]
    action = _t(sample["action"], dev)[:, :max_samples]
    reward = _t(sample["reward"], dev)[:, :max_samples]
    task = _t(sample["task"], dev, torch.long)[:max_samples]
    K, N = action.shape[0], action.shape[1]
    group = m.cfg.simnorm_dim
    obs_dim = obs_dim or infer_obs_dim(obs)
    gen = torch.Generator().manual_seed(seed)
    encode = lambda o: m.encode(o, task)  # noqa: E731
    step = lambda z, a: m.next(z, a, task)  # noqa: E731
    z0 = encode(obs[0]).float()
    own = obs[0, :, :obs_dim]
    ddof = 1 if N > 1 else 0  # one sample (a task a small balanced draw barely reached): spread 0, no warning
    own_std = (own - own.mean(0)) / own.std(0, correction=ddof).clamp_min(1e-6)
    r: dict[str, Any] = {"task_id": int(task[0]), "obs_dim": obs_dim, "samples": N, "window": K}

    # geometry and information kept
    cap = geometry.attainable_dim(m.cfg.latent_dim, group)
    r["effective_rank"] = geometry.effective_rank(z0, group)
    r["participation_ratio"] = geometry.participation_ratio(z0, group)
    attainable = min(cap, N - 1)  # N samples span at most N - 1 dims; one sample spans none
    r["effective_rank_frac"] = r["effective_rank"] / attainable if attainable > 0 else None
    r["participation_ratio_frac"] = r["participation_ratio"] / attainable if attainable > 0 else None
    r["numerical_rank"] = geometry.numerical_rank(z0, group, rtol=1e-4)
    r["spread"] = geometry.latent_spread(z0)
    r["knn_overlap"] = geometry.knn_overlap(own_std, z0, knn_k)
    r["knn_chance"] = min(knn_k, N - 1) / max(N - 1, 1)
    probe = geometry.linear_probe(z0, own, generator=gen)  # over the observation dims that vary
    r["probe_r2"], r["probe_dims"], r["probe_r2_reason"] = probe["r2"], probe["dims"], probe["reason"]
    r["spectrum"] = geometry.covariance_spectrum(z0, group)[:32].tolist()

    # dynamics
    mse, rel = dynamics.kstep_latent_error(encode, step, obs, action)
    r["kstep_mse"], r["kstep_rel_error"] = mse.tolist(), rel.tolist()
    r["kstep_rel_error_1"], r["kstep_rel_error_last"] = float(rel[0]), float(rel[-1])
    L = min(lipschitz_rows, N)
    with torch.enable_grad():
        lip = dynamics.local_lipschitz(
            lambda z, a: m.next(z, a, task[:L]), z0[:L], action[0, :L], group=group, generator=gen
        )
    r["lipschitz_median"], r["lipschitz_max"] = float(lip.median()), float(lip.max())

    # reward calibration: from encoder latents (one step) and along the model's own rollout
    z_enc = encode(obs[:-1])  # [K, N, L]
    r_hat = m.two_hot.decode(m.reward(z_enc, action, task)).squeeze(-1)
    cal = dynamics.calibration(r_hat, reward)
    z, roll = z0, []
    for k in range(K):
        roll.append(m.two_hot.decode(m.reward(z, action[k], task)).squeeze(-1))
        z = step(z, action[k])
    cal_roll = dynamics.calibration(torch.stack(roll), reward)
    r["reward_calibration"], r["reward_rollout_calibration"] = cal, cal_roll
    r["reward_r2"], r["reward_bias"], r["reward_rollout_r2"] = cal["r2"], cal["bias"], cal_roll["r2"]
    r["reward_mae"] = cal["mae"]  # r2 is NaN when the realised rewards are constant (e.g. sparse, all 0)
    idx = torch.randperm(r_hat.numel(), generator=gen)[:200]
    r["reward_pairs"] = [r_hat.flatten()[idx].tolist(), reward.flatten()[idx].tolist()]

    # termination calibration (tasks that can terminate): from encoder latents of the next
    # observation and along the model's own rollout (what the planner sees)
    tid = int(task[0])
    if m.termination_head is not None and bool(m.can_terminate[tid]) and "terminated" in sample:
        term = _t(sample["terminated"], dev)[:, :max_samples]
        cal_t = dynamics.termination_calibration(m.termination(encode(obs[1:]), task).squeeze(-1), term)
        z, roll_t = z0, []
        for k in range(K):
            z = step(z, action[k])
            roll_t.append(m.termination(z, task).squeeze(-1))
        cal_t_roll = dynamics.termination_calibration(torch.stack(roll_t), term)
        r["termination_calibration"], r["termination_rollout_calibration"] = cal_t, cal_t_roll
        r["termination_brier"], r["termination_bias"] = cal_t["brier"], cal_t["bias"]
        r["termination_recall"], r["termination_false_alarm"] = cal_t["recall"], cal_t["false_alarm"]
        r["termination_rollout_recall"] = cal_t_roll["recall"]
        r["termination_rollout_false_alarm"] = cal_t_roll["false_alarm"]
        r["termination_events"] = cal_t["terminations"]  # recall rests on this many realised terminations

    # value calibration on real episodes: V(z_t) and the planner's predicted return vs return-to-go
    if episodes:
        gamma = float(agent.discounts[int(task[0])])
        v_pred, plan_pred, real = [], [], []
        for ep in episodes:
            G = dynamics.discounted_returns(torch.as_tensor(ep["reward"]), gamma)
            n = dynamics.untruncated_steps(len(G), gamma)
            if n == 0:
                continue
            o = _t(ep["obs"][:n], dev)
            tid = torch.full((n,), int(task[0]), dtype=torch.long, device=dev)
            v_pred.append(audits.state_value(m, o, tid).double().cpu())
            plan_pred.append(torch.as_tensor(ep["plan_value"][:n], dtype=torch.float64))
            real.append(G[:n])
        if real:
            v, p, g = torch.cat(v_pred), torch.cat(plan_pred), torch.cat(real)
            r["value_calibration"] = dynamics.calibration(v, g)
            r["plan_value_calibration"] = dynamics.calibration(p, g)
            r["value_corr"], r["value_bias"] = r["value_calibration"]["corr"], r["value_calibration"]["bias"]
            r["value_slope"], r["value_mae"] = r["value_calibration"]["slope"], r["value_calibration"]["mae"]
            r["plan_value_corr"] = r["plan_value_calibration"]["corr"]
            idx = torch.randperm(len(g), generator=gen)[:200]
            r["value_pairs"] = [v[idx].tolist(), g[idx].tolist()]
        r["episode_returns"] = [float(ep["return"]) for ep in episodes]

    # planner audits on a few states
    if run_audits:
        S = min(audit_states, N)
        o_a, t_a = obs[0, :S], task[:S]
        scale = obs[0].std(0, keepdim=True, correction=ddof)
        es = audits.elite_stability(
            m,
            o_a,
            t_a,
            agent.discounts,
            agent.cfg.planner,
            obs_scale=scale,
            seed=seed,
            autocast_dtype=agent.autocast_dtype,
        )
        hs = audits.horizon_sweep(
            m,
            o_a,
            t_a,
            agent.discounts,
            agent.cfg.planner,
            horizons=horizons,
            seed=seed,
            autocast_dtype=agent.autocast_dtype,
        )
        ws = audits.warm_start_ablation(
            m,
            obs[0, :S],
            obs[1, :S],
            t_a,
            agent.discounts,
            agent.cfg.planner,
            seed=seed,
            max_iterations=ablation_iterations or max(6, agent.cfg.planner.iterations),
        )
        r["elite_stability"], r["horizon_sweep"], r["warm_start"] = es, hs, ws
        r["elite_action_rms_small"], r["elite_action_rms_large"] = es["action_rms"][0], es["action_rms"][-1]
        r["elite_jaccard_small"] = es["elite_jaccard"][0]
        r["elite_seed_floor_action_rms"] = es["seed_floor"]["action_rms"]
        r["horizon_action_rms_h1"] = hs["action_rms_vs_default"][0]
        r["horizon_return_shift_2h"] = hs["return_shift_vs_default"][-1]
        r["warm_iters_to_ref"], r["cold_iters_to_ref"] = ws["iters_to_ref_warm"], ws["iters_to_ref_cold"]
    return r


@torch.no_grad()
def cross_task(agent, obs_by_task: dict[str, torch.Tensor], ids: dict[str, int], max_samples: int = 256) -> dict:
    """CKA[i, j] = linear CKA of encode(O_ij, task i) vs encode(O_ij, task j) on the pooled
    observations O_ij of both tasks: 1 means the task embedding leaves the latent geometry
    unchanged (the tasks share one, possibly averaged, latent), low means task-specific
    geometry. separation[i, j] = centroid distance of each task's own latents in units of
    their spread (~0 when tasks land on the same latent region)."""
    m, names = agent.model, list(obs_by_task)
    T = len(names)
    cka, sep = np.eye(T), np.zeros((T, T))
    own = {}
    for n in names:
        o = obs_by_task[n][:max_samples]
        own[n] = m.encode(o, torch.full((o.shape[0],), ids[n], dtype=torch.long, device=o.device)).float()
    for i in range(T):
        for j in range(i + 1, T):
            o = torch.cat([obs_by_task[names[i]][: max_samples // 2], obs_by_task[names[j]][: max_samples // 2]])
            za = m.encode(o, torch.full((o.shape[0],), ids[names[i]], dtype=torch.long, device=o.device))
            zb = m.encode(o, torch.full((o.shape[0],), ids[names[j]], dtype=torch.long, device=o.device))
            cka[i, j] = cka[j, i] = geometry.linear_cka(za, zb)
            sep[i, j] = sep[j, i] = geometry.centroid_separation(own[names[i]], own[names[j]])
    off = ~np.eye(T, dtype=bool)
    return {
        "tasks": names,
        "cka": cka.tolist(),
        "separation": sep.tolist(),
        "cka_offdiag_mean": float(cka[off].mean()) if T > 1 else float("nan"),
        "separation_offdiag_min": float(sep[off].min()) if T > 1 else float("nan"),
    }


def run_diagnostics(
    agent,
    samples_by_task: Mapping[str, Mapping[str, Any]],
    *,
    episodes_by_task: Mapping[str, list[dict]] | None = None,
    obs_dims: Mapping[str, int] | None = None,
    max_samples: int = 512,
    audit_states: int = 16,
    run_audits: bool = True,
    horizons: tuple[int, ...] | None = None,
    ablation_iterations: int | None = None,
    seed: int = 0,
) -> dict:
    """Per-task geometry, information, dynamics, calibration and planner audits, plus the
    cross-task CKA / separation matrices.

    samples_by_task: task name -> replay dict (agents/batch.py keys; obs [K+1, N, O] with
    K >= 1, ideally 2H so k-step errors reach 2H). horizons: the terminal-value sweep
    (default 1..2H); ablation_iterations: the warm-start ablation's range (default max(6, I)).
    episodes_by_task: optional task name ->
    evaluation episodes (value calibration). Cost grows with max_samples, audit_states and
    len(horizons); nothing else depends on the data size.
    Returns {"tasks": {name: metrics}, "cross_task": {...}, "config": {...}, "seconds": float}.
    """
    t0 = time.perf_counter()
    episodes_by_task = episodes_by_task or {}
    tasks, first_obs, ids = {}, {}, {}
    for i, (name, sample) in enumerate(samples_by_task.items()):
        tasks[name] = task_metrics(
            agent,
            name,
            sample,
            obs_dim=(obs_dims or {}).get(name),
            episodes=episodes_by_task.get(name),
            max_samples=max_samples,
            audit_states=audit_states,
            run_audits=run_audits,
            horizons=horizons,
            ablation_iterations=ablation_iterations,
            seed=seed + i,
        )
        first_obs[name] = _t(sample["obs"], agent.device)[0]
        ids[name] = tasks[name]["task_id"]
    pc = agent.cfg.planner
    return {
        "tasks": tasks,
        "cross_task": cross_task(agent, first_obs, ids, max_samples=max_samples),
        "config": {
            "latent_dim": agent.cfg.model.latent_dim,
            "simnorm_group": agent.cfg.model.simnorm_dim,
            "planner": {
                "horizon": pc.horizon,
                "iterations": pc.iterations,
                "num_samples": pc.num_samples,
                "num_elites": pc.num_elites,
            },
            "updates": agent.updates,
        },
        "seconds": time.perf_counter() - t0,
    }


def scalars(results: dict, prefix: str = "diag") -> dict[str, float]:
    """Flatten results to {"diag/<task>/<metric>": value, "diag/mean/<metric>": ...} (finite floats only)."""
    out: dict[str, float] = {}
    per_metric: dict[str, list[float]] = {}
    for name, r in results.get("tasks", {}).items():
        for k in SCALAR_KEYS:
            v = r.get(k)
            if isinstance(v, (int, float)) and math.isfinite(v):
                out[f"{prefix}/{name}/{k}"] = float(v)
                per_metric.setdefault(k, []).append(float(v))
    for k, vs in per_metric.items():
        out[f"{prefix}/mean/{k}"] = float(np.mean(vs))
    ct = results.get("cross_task", {})
    for k in ("cka_offdiag_mean", "separation_offdiag_min"):
        if isinstance(ct.get(k), float) and math.isfinite(ct[k]):
            out[f"{prefix}/{k}"] = ct[k]
    if "seconds" in results:
        out[f"{prefix}/seconds"] = float(results["seconds"])
    return out


def log_scalars(values: dict[str, float], run_dir: str | Path, step: int, wandb_run=None) -> None:
    """Append {"step": step, **values} to run_dir/metrics.jsonl and log to a wandb run if given."""
    path = Path(run_dir) / "metrics.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps({"step": step, **values}) + "\n")
    if wandb_run is not None:
        wandb_run.log(values, step=step)
