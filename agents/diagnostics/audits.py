"""Planner audits (the seed's recipe), all built on `plan_batch` with modified configs.

- elite stability: perturb observations by small noise and see how far the elites, the
  refit mean and the executed first action move, next to the planner's own seed noise;
- terminal-value bias: plan with horizons 1..2H and see how the first action and the
  predicted return move (an honest terminal value keeps both steady);
- warm-start ablation: MPPI iterations needed to reach the cold-start plan quality with
  and without the shifted previous mean.

Every function plans M rows in one batched call per setting, in eval mode, with fixed
planner seeds so that differences come from the audited factor only.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from agents.config import PlannerConfig
from agents.planner import PlannerState, estimate_value, plan_batch
from agents.world_model import WorldModel


def _audit_cfg(cfg: PlannerConfig, **changes) -> PlannerConfig:
    # audits count iterations exactly and never stop on a deadline
    return replace(cfg, deadline_ms=None, large_action_extra_iterations=0, **changes)


def _plan(model, obs, task, cfg, discounts, seed, autocast_dtype=None, horizon=None):
    state = PlannerState.create(
        obs.shape[0], horizon or cfg.horizon, model.cfg.action_dim, seed=seed, device=obs.device
    )
    return plan_batch(model, obs, task, state, cfg, discounts, eval_mode=True, autocast_dtype=autocast_dtype)


def _masked_rms(diff: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """diff [M, ..., A], mask [M, A] -> [M] RMS over active action dims (and middle dims)."""
    m = mask.view(mask.shape[0], *([1] * (diff.dim() - 2)), mask.shape[1]).expand_as(diff)
    return ((diff * m).pow(2).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)).sqrt()


def _jaccard(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Jaccard index of two index sets a, b [M, E] -> [M]."""
    inter = (a.unsqueeze(2) == b.unsqueeze(1)).any(2).sum(1).float()
    return inter / (2 * a.shape[1] - inter)


@torch.no_grad()
def elite_stability(
    model: WorldModel,
    obs: torch.Tensor,
    task: torch.Tensor,
    discounts: torch.Tensor,
    cfg: PlannerConfig,
    *,
    scales: tuple[float, ...] = (0.01, 0.03, 0.1),
    obs_scale: torch.Tensor | None = None,
    seed: int = 0,
    autocast_dtype: torch.dtype | None = None,
) -> dict:
    """How the plan for obs [M, O] (tasks [M]) moves under observation noise.

    Noise is `scale * obs_scale * N(0, 1)` per dim (`obs_scale` [O] or [M, O], e.g. the
    task's per-dim std; padded dims have scale 0 and stay 0). The planner seed is fixed, so
    the changes come from the observation only. The row "seed" re-plans the clean
    observation with another planner seed: the noise floor of MPPI itself.
    Returns {"scales": [...], "action_rms": [...], "mean_rms": [...], "elite_jaccard": [...],
    "value_abs_change": [...], "seed_floor": {same keys -> float}}.
    """
    cfg = _audit_cfg(cfg)
    mask = model.mask(task).float()
    if obs_scale is None:
        obs_scale = obs.std(0, keepdim=True, correction=1 if obs.shape[0] > 1 else 0)
    gen = torch.Generator().manual_seed(seed + 17)
    a0, i0 = _plan(model, obs, task, cfg, discounts, seed, autocast_dtype)

    def compare(a, info):
        return {
            "action_rms": float(_masked_rms(a - a0, mask).mean()),
            "mean_rms": float(_masked_rms(info.mean - i0.mean, mask).mean()),
            "elite_jaccard": float(_jaccard(info.elite_index, i0.elite_index).mean()),
            "value_abs_change": float((info.chosen_value - i0.chosen_value).abs().mean()),
        }

    out = {"scales": list(scales), "action_rms": [], "mean_rms": [], "elite_jaccard": [], "value_abs_change": []}
    for s in scales:
        noisy = obs + s * obs_scale * torch.randn(obs.shape, generator=gen).to(obs.device)
        for k, v in compare(*_plan(model, noisy, task, cfg, discounts, seed, autocast_dtype)).items():
            out[k].append(v)
    out["seed_floor"] = compare(*_plan(model, obs, task, cfg, discounts, seed + 1, autocast_dtype))
    return out


@torch.no_grad()
def state_value(model: WorldModel, obs: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
    """V(z) = mean-ensemble Q(z, pi_mean(z)) of obs [M, O] -> [M] (the deterministic policy action)."""
    z = model.encode(obs, task)
    eps = torch.zeros(*z.shape[:-1], model.cfg.action_dim, device=z.device)
    a, _ = model.pi(z, task, eps=eps)
    return model.Q(z, a, task, mode="mean").squeeze(-1).float()


@torch.no_grad()
def horizon_sweep(
    model: WorldModel,
    obs: torch.Tensor,
    task: torch.Tensor,
    discounts: torch.Tensor,
    cfg: PlannerConfig,
    *,
    horizons: tuple[int, ...] | None = None,
    seed: int = 0,
    autocast_dtype: torch.dtype | None = None,
) -> dict:
    """Terminal-value bias audit: plan obs [M, O] with each horizon (default 1..2H, fresh
    planner state per horizon, same seed). Returns {"horizons", "action_rms_vs_default",
    "predicted_return" (mean chosen value), "return_shift_vs_default", "value_estimate"
    (mean V(z0), the horizon-0 answer), "seed_floor_action_rms"}."""
    H = cfg.horizon
    horizons = tuple(horizons or range(1, 2 * H + 1))
    base_cfg = _audit_cfg(cfg)
    mask = model.mask(task).float()
    a_ref, i_ref = _plan(model, obs, task, base_cfg, discounts, seed, autocast_dtype)
    a_seed, _ = _plan(model, obs, task, base_cfg, discounts, seed + 1, autocast_dtype)
    j_ref = float(i_ref.chosen_value.mean())
    out = {
        "horizons": list(horizons),
        "default_horizon": H,
        "action_rms_vs_default": [],
        "predicted_return": [],
        "return_shift_vs_default": [],
    }
    for h in horizons:
        a, info = _plan(model, obs, task, _audit_cfg(cfg, horizon=h), discounts, seed, autocast_dtype, horizon=h)
        out["action_rms_vs_default"].append(float(_masked_rms(a - a_ref, mask).mean()))
        j = float(info.chosen_value.mean())
        out["predicted_return"].append(j)
        out["return_shift_vs_default"].append(j - j_ref)
    out["value_estimate"] = float(state_value(model, obs, task).mean())
    out["seed_floor_action_rms"] = float(_masked_rms(a_seed - a_ref, mask).mean())
    return out


@torch.no_grad()
def plan_quality(
    model: WorldModel, obs: torch.Tensor, task: torch.Tensor, mean: torch.Tensor, discounts: torch.Tensor
) -> torch.Tensor:
    """Deterministic predicted return of each row's mean plan [M, H, A] from obs [M, O] -> [M]
    (terminal action is the policy mean, terminal value the average of Q heads 0 and 1)."""
    M, H, A = mean.shape
    z = model.encode(obs, task).unsqueeze(1)  # [M, 1, L]
    gamma = discounts.to(obs.device)[task].view(M, 1, 1)
    heads = torch.arange(min(2, model.cfg.num_q), device=obs.device)
    v = estimate_value(
        model, z, mean.unsqueeze(2), task.view(M, 1), gamma, torch.zeros(M, 1, A, device=obs.device), heads
    )
    return v.view(M)


@torch.no_grad()
def warm_start_ablation(
    model: WorldModel,
    obs_prev: torch.Tensor,
    obs: torch.Tensor,
    task: torch.Tensor,
    discounts: torch.Tensor,
    cfg: PlannerConfig,
    *,
    max_iterations: int | None = None,
    rel_tol: float = 0.1,
    abs_tol: float = 1e-6,
    seed: int = 0,
) -> dict:
    """Iterations to reach the cold-start plan quality, warm vs cold.

    For consecutive observations obs_prev, obs [M, O]: plan obs_prev (full iterations), then
    plan obs with i = 1..I iterations either warm-started from that plan or cold (state
    reset). Quality is `plan_quality` of the refit mean. The reference is the cold plan at I
    iterations; a row needs the first i whose quality is within rel_tol of the cold planner's
    own improvement from 1 to I iterations (+ abs_tol) of it, i.e. by default 90% of the way
    (I + 1 if never). The predicted return is dominated by the terminal value, so a tolerance
    relative to the return itself would call every plan converged. Returns {"iterations": [1..I], "quality_warm"/"quality_cold": mean
    per i, "iters_to_ref_warm"/"iters_to_ref_cold": mean over rows}.
    """
    I = max_iterations or cfg.iterations
    full = _audit_cfg(cfg)
    M = obs.shape[0]
    q = {"warm": [], "cold": []}
    # warm rows 0..M-1 and cold rows M..2M-1 in one call: row m + M draws row m's random stream, and a
    # row's plan does not depend on its batch-mates (up to matmul rounding)
    obs2, task2 = torch.cat([obs, obs]), torch.cat([task, task])
    after_prev = PlannerState.create(
        2 * M, cfg.horizon, model.cfg.action_dim, seed=seed, device=obs.device, row_ids=list(range(M)) * 2
    )
    plan_batch(model, torch.cat([obs_prev, obs_prev]), task2, after_prev, full, discounts, eval_mode=True)
    for i in range(1, I + 1):
        state = after_prev.clone()  # every run starts from the plan of obs_prev
        state.reset(list(range(M, 2 * M)))  # cold: same random stream position as the warm rows, no shifted mean
        _, info = plan_batch(model, obs2, task2, state, _audit_cfg(cfg, iterations=i), discounts, eval_mode=True)
        quality = plan_quality(model, obs2, task2, info.mean, discounts)
        q["warm"].append(quality[:M])
        q["cold"].append(quality[M:])
    ref = q["cold"][-1]
    tol = rel_tol * (ref - q["cold"][0]).abs() + abs_tol

    def needed(curve):
        ok = torch.stack(curve) >= (ref - tol)  # [I, M]
        first = torch.where(ok.any(0), ok.float().argmax(0) + 1, torch.full_like(ref, I + 1, dtype=torch.long))
        return float(first.float().mean())

    return {
        "iterations": list(range(1, I + 1)),
        "quality_warm": [float(x.mean()) for x in q["warm"]],
        "quality_cold": [float(x.mean()) for x in q["cold"]],
        "iters_to_ref_warm": needed(q["warm"]),
        "iters_to_ref_cold": needed(q["cold"]),
    }
