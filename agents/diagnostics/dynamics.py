"""Does the latent dynamics predict the encoder, is it smooth, are reward/value honest?

Functions take the model pieces as callables (`encode(obs) -> z`, `step(z, a) -> z'`),
so a test can pass a known map and check the known answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from agents.diagnostics.geometry import simplex_tangent

Encode = Callable[[torch.Tensor], torch.Tensor]
Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def kstep_latent_error(
    encode: Encode, step: Step, obs: torch.Tensor, action: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Open-loop latent prediction error against the encoder's own latents.

    obs [K+1, N, O], action [K, N, A] -> (mse [K], relative [K]): mse[k-1] is the mean
    over rows and latent dims of (z_hat_k - encode(obs_k))^2 with z_hat rolled k steps
    from encode(obs_0); relative divides by the per-dim variance of the encoder latents
    (1 means no better than predicting the mean latent).
    """
    target = encode(obs)  # [K+1, N, L]
    z = target[0]
    var = target.reshape(-1, target.shape[-1]).double().var(0).mean().clamp_min(1e-12)
    errors = []
    for k in range(action.shape[0]):
        z = step(z, action[k])
        errors.append((z.double() - target[k + 1].double()).pow(2).mean())
    mse = torch.stack(errors)
    return mse, mse / var


def local_lipschitz(
    step: Step,
    z: torch.Tensor,
    action: torch.Tensor,
    *,
    group: int | None = None,
    iters: int = 20,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Spectral norm of the Jacobian d step(z, a) / dz at each row, by power iteration.

    z [N, L], action [N, A] -> [N]. With `group` (SimNorm), input directions are restricted
    to the simplex tangent space (the only ones a SimNorm latent can move in).
    For step(z, a) = z M^T + ..., every row gives the largest singular value of M.
    """
    z = z.detach().float().requires_grad_(True)
    out = step(z, action.detach().float())  # one graph, reused by every iteration
    # J^T u by backprop; J v by differentiating u -> J^T u (linear in u) once more, which
    # works where torch.func cannot (the task embedding's max-norm renormalises in place)
    u0 = torch.zeros_like(out, requires_grad=True)
    (jt_u0,) = torch.autograd.grad(out, z, u0, create_graph=True)
    v = simplex_tangent(torch.randn(z.shape, generator=generator), group)
    v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    sigma = torch.zeros(z.shape[0])
    for _ in range(iters):  # rows are independent, so the batch Jacobian is block-diagonal
        (jv,) = torch.autograd.grad(jt_u0, u0, v, retain_graph=True)
        (jtjv,) = torch.autograd.grad(out, z, jv, retain_graph=True)
        jtjv = simplex_tangent(jtjv, group)
        sigma = jv.norm(dim=-1)
        v = jtjv / jtjv.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return sigma.detach()


def calibration(pred: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """How well predictions [N] match realised values [N].

    Returns bias (mean pred - real), mae, rmse, pearson correlation, r2 (of real explained by
    pred as-is), and slope/intercept of the least-squares fit real ~ slope * pred + intercept
    (a perfect predictor: bias 0, r2 1, slope 1, intercept 0).
    """
    p, r = pred.double().flatten(), real.double().flatten()
    if p.numel() != r.numel():
        raise ValueError(f"calibration needs paired values, got {p.numel()} and {r.numel()}")
    n = p.numel()
    out = {"n": float(n)}
    if n == 0:
        return out | {k: float("nan") for k in ("bias", "mae", "rmse", "corr", "r2", "slope", "intercept")}
    err = p - r
    out["bias"] = float(err.mean())
    out["mae"] = float(err.abs().mean())
    out["rmse"] = float(err.pow(2).mean().sqrt())
    pc, rc = p - p.mean(), r - r.mean()
    vp, vr = pc.pow(2).sum(), rc.pow(2).sum()
    # a near-constant series (a sparse reward never reached: values like 1e-150) has no variance to
    # explain: r2, corr and slope are NaN there, not figures of 1e22
    p_varies, r_varies = _varies(p), _varies(r)
    out["corr"] = float((pc * rc).sum() / (vp * vr).sqrt()) if p_varies and r_varies else float("nan")
    out["r2"] = float(1 - err.pow(2).sum() / vr) if r_varies else float("nan")
    out["slope"] = float((pc * rc).sum() / vp) if p_varies else float("nan")
    out["intercept"] = float(r.mean() - out["slope"] * p.mean()) if p_varies else float("nan")
    return out


def _varies(x: torch.Tensor) -> bool:
    """Whether x's spread is more than rounding: std > 0.001 x its RMS value and > 1e-6 (the rule
    the probe R^2 uses for observation dims)."""
    std, rms = float(x.std(unbiased=False)), float(x.pow(2).mean().sqrt())
    return std > max(1e-6, 1e-3 * rms)


def termination_calibration(logits: torch.Tensor, terminated: torch.Tensor) -> dict[str, float]:
    """How well termination logits [N] predict realised terminations [N] in {0, 1}.

    Returns n, rate (realised), mean_prob (predicted; bias = mean_prob - rate), brier, log_loss,
    recall (terminations predicted at p > 0.5, as the planner uses them) and false_alarm (steps
    predicted to terminate that did not). recall is NaN without terminations in the data.
    """
    x, y = logits.double().flatten(), terminated.double().flatten()
    if x.numel() != y.numel():
        raise ValueError(f"termination calibration needs paired values, got {x.numel()} and {y.numel()}")
    n, pos = y.numel(), y > 0.5
    out = {"n": float(n), "terminations": float(pos.sum())}
    if n == 0:
        return out | {
            k: float("nan") for k in ("rate", "mean_prob", "bias", "brier", "log_loss", "recall", "false_alarm")
        }
    p, pred = torch.sigmoid(x), x > 0
    out["rate"], out["mean_prob"] = float(y.mean()), float(p.mean())
    out["bias"] = out["mean_prob"] - out["rate"]
    out["brier"] = float((p - y).pow(2).mean())
    out["log_loss"] = float(torch.nn.functional.binary_cross_entropy_with_logits(x, y))
    out["recall"] = float(pred[pos].double().mean()) if pos.any() else float("nan")
    out["false_alarm"] = float(pred[~pos].double().mean()) if (~pos).any() else float("nan")
    return out


def discounted_returns(reward: torch.Tensor, gamma: float) -> torch.Tensor:
    """Return-to-go G_t = sum_{j>=t} gamma^(j-t) r_j of one episode's rewards [T] -> [T]."""
    out = torch.zeros(reward.shape[0], dtype=torch.float64)
    g = 0.0
    for t in range(reward.shape[0] - 1, -1, -1):
        g = float(reward[t]) + gamma * g
        out[t] = g
    return out


def untruncated_steps(length: int, gamma: float, tail: float = 0.05) -> int:
    """Number of leading steps t of a time-limited episode whose return-to-go misses at most
    a `tail` fraction of the discount mass (gamma^(T-t) <= tail): their G_t is comparable
    to a value estimate even though the episode was cut off."""
    if gamma <= 0:
        return length
    cut = int(math.ceil(math.log(tail) / math.log(gamma))) if gamma < 1 else length
    return max(length - cut, 0)
