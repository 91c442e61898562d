"""Discrete regression in symlog space (two-hot targets), as used for reward and value heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


class TwoHot:
    """Maps scalars to/from distributions over `num_bins` evenly spaced bins in [vmin, vmax] (symlog space)."""

    def __init__(self, num_bins: int, vmin: float, vmax: float):
        if num_bins < 2:
            raise ValueError("two-hot regression needs at least 2 bins")
        self.num_bins, self.vmin, self.vmax = num_bins, float(vmin), float(vmax)
        self.bin_size = (self.vmax - self.vmin) / (num_bins - 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[..., 1] or [...] scalars -> [..., num_bins] two-hot probabilities of symlog(x)."""
        if x.dim() > 0 and x.shape[-1] == 1:
            x = x.squeeze(-1)
        pos = (symlog(x).clamp(self.vmin, self.vmax) - self.vmin) / self.bin_size
        lo = pos.floor().clamp(max=self.num_bins - 2)
        frac = (pos - lo).unsqueeze(-1)
        lo = lo.long().unsqueeze(-1)
        out = torch.zeros(*x.shape, self.num_bins, dtype=frac.dtype, device=x.device)
        out.scatter_(-1, lo, 1 - frac)
        out.scatter_add_(-1, lo + 1, frac)
        return out

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """[..., num_bins] logits -> [..., 1] scalars (expected bin value, mapped back by symexp)."""
        bins = torch.linspace(self.vmin, self.vmax, self.num_bins, device=logits.device, dtype=torch.float32)
        probs = F.softmax(logits.float(), dim=-1)
        return symexp((probs * bins).sum(-1, keepdim=True))

    def cross_entropy(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """[..., num_bins] logits, [..., 1] scalar targets -> [..., 1] cross-entropy."""
        log_p = F.log_softmax(logits.float(), dim=-1)
        return -(self.encode(target) * log_p).sum(-1, keepdim=True)
