"""Latent geometry of one task, and how tasks' latents relate to each other.

Plain torch functions over sample matrices (rows are samples). A SimNorm latent is G
groups of `group` features, each group on a probability simplex: its centred covariance
has rank at most G * (group - 1), so rank measures take `simnorm_group` to project out
the group-sum directions and to normalise by that attainable dimension instead of L.
"""

from __future__ import annotations

import torch


def simplex_tangent(z: torch.Tensor, group: int | None) -> torch.Tensor:
    """Project [..., L] onto the directions a product of `group`-simplices can move in
    (subtract each group's mean); identity when `group` is None."""
    if group is None:
        return z
    shape = z.shape
    g = z.reshape(*shape[:-1], shape[-1] // group, group)
    return (g - g.mean(-1, keepdim=True)).reshape(shape)


def attainable_dim(latent_dim: int, group: int | None) -> int:
    """Largest possible rank of a centred latent cloud: L, or L * (group-1)/group under SimNorm."""
    return latent_dim if group is None else latent_dim // group * (group - 1)


def covariance_spectrum(z: torch.Tensor, group: int | None = None) -> torch.Tensor:
    """Eigenvalues (descending, >= 0) of the sample covariance of z [N, L] -> [min(N, L)]."""
    x = simplex_tangent(z.double(), group)
    x = x - x.mean(0, keepdim=True)
    s = torch.linalg.svdvals(x) ** 2 / max(x.shape[0] - 1, 1)
    return s


def effective_rank(z: torch.Tensor, group: int | None = None) -> float:
    """exp(entropy of the normalised covariance spectrum) of z [N, L] (Roy & Vetterli):
    equals k for k equal-variance directions, 1 for a line, 0 for a single point."""
    s = covariance_spectrum(z, group)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def participation_ratio(z: torch.Tensor, group: int | None = None) -> float:
    """(sum lambda)^2 / sum lambda^2 of the covariance of z [N, L]: k for k equal directions."""
    s = covariance_spectrum(z, group)
    denom = (s**2).sum()
    return float(s.sum() ** 2 / denom) if denom > 0 else 0.0


def numerical_rank(z: torch.Tensor, group: int | None = None, rtol: float = 1e-6) -> int:
    """Number of covariance eigenvalues above rtol * the largest, for z [N, L]."""
    s = covariance_spectrum(z, group)
    return int((s > rtol * s.max()).sum()) if s.numel() and s.max() > 0 else 0


def latent_spread(z: torch.Tensor) -> float:
    """Root-mean-square distance of z [N, L] rows to their centroid (sqrt of total variance)."""
    x = z.double() - z.double().mean(0, keepdim=True)
    return float(x.pow(2).sum(1).mean().sqrt())


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear centred kernel alignment of paired samples x [N, D1], y [N, D2], in [0, 1]:
    1 when y is an orthogonal transform and scaling of x, near 0 for independent ones."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs paired rows, got {x.shape[0]} and {y.shape[0]}")
    x = x.double() - x.double().mean(0, keepdim=True)
    y = y.double() - y.double().mean(0, keepdim=True)
    xy = torch.linalg.matrix_norm(x.T @ y) ** 2
    xx = torch.linalg.matrix_norm(x.T @ x)
    yy = torch.linalg.matrix_norm(y.T @ y)
    if xx == 0 or yy == 0:
        return 0.0
    return float(xy / (xx * yy))


def centroid_separation(z_a: torch.Tensor, z_b: torch.Tensor) -> float:
    """Distance between the centroids of two latent clouds [Na, L], [Nb, L], in units of
    their mean spread: ~0 when two tasks share one (average) latent region."""
    d = (z_a.double().mean(0) - z_b.double().mean(0)).norm()
    s = 0.5 * (latent_spread(z_a) + latent_spread(z_b))
    return float(d / s) if s > 0 else float("inf") if d > 0 else 0.0


def knn_overlap(x: torch.Tensor, z: torch.Tensor, k: int = 10) -> float:
    """Mean fraction of each row's k nearest neighbours (Euclidean, self excluded) shared
    between spaces x [N, Dx] and z [N, Dz]: 1 for a similarity transform, ~k/(N-1) by chance."""
    n = x.shape[0]
    if z.shape[0] != n:
        raise ValueError(f"kNN overlap needs paired rows, got {n} and {z.shape[0]}")
    k = min(k, n - 1)
    if k < 1:
        return float("nan")

    def neighbours(a: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(a.double(), a.double())
        d.fill_diagonal_(float("inf"))
        return d.topk(k, dim=1, largest=False).indices  # [N, k]

    nx, nz = neighbours(x), neighbours(z)
    hit = (nx.unsqueeze(2) == nz.unsqueeze(1)).any(2).double()  # [N, k]
    return float(hit.mean())


# A probe target dim "varies" when its std exceeds PROBE_VARY_RTOL x the dim's own RMS magnitude
# (and PROBE_VARY_ATOL), in the training rows and in the held-out rows alike. Below that, R^2 divides
# by float jitter: an object resting at 0.6 m with 1e-7 m noise, or a dim that moved in a few
# training rows only, gave held-out R^2 of -382944 (mw-pick-out-of-hole).
PROBE_VARY_RTOL = 1e-3
PROBE_VARY_ATOL = 1e-6


def varying_dims(
    y: torch.Tensor, *row_sets: torch.Tensor, rtol: float = PROBE_VARY_RTOL, atol: float = PROBE_VARY_ATOL
) -> torch.Tensor:
    """[D] bool: the dims of y [N, D] whose std within each of `row_sets` (index tensors; default:
    all rows) exceeds max(rtol x the dim's RMS value over all N rows, atol)."""
    y = y.double()
    floor = (rtol * y.pow(2).mean(0).sqrt()).clamp_min(atol)
    keep = torch.ones(y.shape[1], dtype=torch.bool, device=y.device)
    for rows in row_sets or (torch.arange(y.shape[0], device=y.device),):
        keep &= y[rows].std(0, correction=0) > floor
    return keep


PROBE_MIN_HELD_OUT = 8  # held-out rows below which the probe reports no R^2


def linear_probe(
    z: torch.Tensor,
    target: torch.Tensor,
    *,
    train_frac: float = 0.7,
    ridge: float = 1e-3,
    generator: torch.Generator | None = None,
    rtol: float = PROBE_VARY_RTOL,
    atol: float = PROBE_VARY_ATOL,
) -> dict:
    """Held-out R^2 of a ridge-regularised linear map z [N, L] -> target [N, D], averaged over the
    target dims that vary (`varying_dims`, in the training and the held-out rows): 1 for a linear
    function of z, ~0 (or below) for noise. Rows are split at random into train/held-out by `train_frac`.

    Returns {"r2": float | None, "dims": dims averaged over, "of": D, "reason": None | why r2 is None}.
    """
    n, d = z.shape[0], target.shape[1]
    n_train = max(2, min(n - 2, int(round(train_frac * n))))
    if n - n_train < PROBE_MIN_HELD_OUT:  # R^2 over 2-3 held-out rows read -4.7e4 on an 8-sample smoke task
        return {
            "r2": None,
            "dims": 0,
            "of": d,
            "reason": f"{n} samples: too few for a held-out R^2 (fewer than {PROBE_MIN_HELD_OUT} held-out rows)",
        }
    perm = torch.randperm(n, generator=generator)
    tr, te = perm[:n_train], perm[n_train:]
    keep = varying_dims(target, tr, te, rtol=rtol, atol=atol)
    if not keep.any():
        return {
            "r2": None,
            "dims": 0,
            "of": d,
            "reason": f"none of the {d} dims varies (std above {rtol:g} x its RMS value and above {atol:g}, "
            "in both the training and the held-out rows)",
        }
    x, y = z.double(), target.double()[:, keep]
    mx, my = x[tr].mean(0, keepdim=True), y[tr].mean(0, keepdim=True)
    sx = x[tr].std(0, keepdim=True).clamp_min(1e-8)  # standardise so `ridge` has one meaning
    xt = (x[tr] - mx) / sx
    gram = xt.T @ xt + ridge * xt.shape[0] * torch.eye(x.shape[1], dtype=x.dtype)
    w = torch.linalg.solve(gram, xt.T @ (y[tr] - my))
    pred = (x[te] - mx) / sx @ w + my
    ss_res = (y[te] - pred).pow(2).sum(0)
    ss_tot = (y[te] - y[te].mean(0, keepdim=True)).pow(2).sum(0)
    return {"r2": float((1 - ss_res / ss_tot).mean()), "dims": int(keep.sum()), "of": d, "reason": None}


def linear_probe_r2(z: torch.Tensor, target: torch.Tensor, **kwargs) -> float:
    """`linear_probe(z, target, **kwargs)["r2"]`, NaN when no target dim varies."""
    r2 = linear_probe(z, target, **kwargs)["r2"]
    return float("nan") if r2 is None else r2
