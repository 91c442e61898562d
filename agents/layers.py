"""Building blocks of the world model: SimNorm, LayerNorm+Mish MLPs, a batched Q ensemble."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _mish_parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (e^x, tanh(softplus(x))), with tanh(softplus(x)) = 1 - 2 / (1 + (1 + e^x)^2): finite for every x
    (e^x overflows to inf above ~88, where the form gives exactly 1)."""
    e = torch.exp(x)
    return e, e.add(1).square_().add_(1).reciprocal_().mul_(-2).add_(1)


class _MishFn(torch.autograd.Function):
    """Mish with its gradient written as a few vector ops: on an AVX2 CPU ~1.3-1.9x faster forward +
    backward than aten's mish kernels at the model's shapes (tiny/1M, batch 64-256)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        e, tsp = _mish_parts(x)
        ctx.save_for_backward(x, e, tsp)
        return x * tsp

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, e, tsp = ctx.saved_tensors
        # d/dx x tanh(softplus(x)) = tsp + x (1 - tsp^2) sigmoid(x), sigmoid(x) = 1 - 1 / (1 + e^x)
        sigmoid = e.add(1).reciprocal_().neg_().add_(1)
        return grad * tsp.square().neg_().add_(1).mul_(sigmoid).mul_(x).add_(tsp)


def mish(x: torch.Tensor) -> torch.Tensor:
    """Mish, x * tanh(softplus(x)): same values (to 1e-6) as F.mish. aten's mish kernel is ~2.5x slower
    than this chain of vector ops on CPU; with autograd, a Function with its own backward."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _MishFn.apply(x)
    # in place: no autograd here, and each pass is a cheap vector op
    return _mish_parts(x)[1].mul_(x)


class Mish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mish(x)


class SimNorm(nn.Module):
    """Simplicial normalisation: softmax over consecutive groups of `group` features."""

    def __init__(self, group: int = 8):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        if shape[-1] % self.group:
            raise ValueError(f"SimNorm: feature dim {shape[-1]} is not a multiple of the group size {self.group}")
        # an explicit softmax: aten's softmax over a last dim of 8 is ~5x slower on CPU
        g = x.view(*shape[:-1], -1, self.group)
        e = torch.exp(g - g.amax(-1, keepdim=True))
        return (e / e.sum(-1, keepdim=True)).view(shape)


def linear_with_context(layer: nn.Linear, x: torch.Tensor, ctx: torch.Tensor | None) -> torch.Tensor:
    """layer(cat([x, ctx], -1)) without building the concatenation: the weight's trailing columns
    multiply ctx [..., C] at its own (broadcast, usually much smaller) shape, e.g. one task embedding
    per planner row instead of one per sample. Same parameters, same result up to rounding."""
    if ctx is None:
        return F.linear(x, layer.weight, layer.bias)
    k = x.shape[-1]
    return F.linear(x, layer.weight[:, :k]).add_(F.linear(ctx, layer.weight[:, k:], layer.bias))


class NormedLinear(nn.Linear):
    """Linear -> (Dropout) -> LayerNorm -> activation (Mish unless given)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0, act: nn.Module | None = None):
        super().__init__(in_dim, out_dim)
        self.ln = nn.LayerNorm(out_dim)
        self.act = act if act is not None else Mish()
        self.dropout = nn.Dropout(dropout) if dropout else None

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """x [..., in - C], ctx [..., C] broadcastable to x's leading dims (or None: x is [..., in])."""
        x = linear_with_context(self, x, ctx)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.act(self.ln(x))


def run_mlp(seq: nn.Sequential, x: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
    """seq(cat([x, ctx], -1)) for an `mlp`, with ctx [..., C] applied as in linear_with_context."""
    first = seq[0]
    if isinstance(first, NormedLinear):
        h = first(x, ctx)
    elif isinstance(first, nn.Linear):
        h = linear_with_context(first, x, ctx)
    else:
        raise TypeError(f"run_mlp: the first layer must be a Linear, got {type(first).__name__}")
    # torch annotates Sequential.__getitem__ as `Sequential | Module` even for a slice (always a Sequential)
    for layer in seq[1:]:  # pyright: ignore[reportGeneralTypeIssues]
        h = layer(h)
    return h


def mlp(
    in_dim: int, hidden: list[int], out_dim: int, *, out_act: nn.Module | None = None, dropout: float = 0.0
) -> nn.Sequential:
    """Hidden layers are NormedLinear (dropout on the first only); the output layer is
    NormedLinear with `out_act` if given (e.g. SimNorm), else a plain Linear."""
    dims = [in_dim] + list(hidden)
    layers: list[nn.Module] = [
        NormedLinear(dims[i], dims[i + 1], dropout=dropout if i == 0 else 0.0) for i in range(len(hidden))
    ]
    layers.append(NormedLinear(dims[-1], out_dim, act=out_act) if out_act is not None else nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """K independent Linear layers applied in one batched matmul: [K, N, in] -> [K, N, out]."""

    def __init__(self, k: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(k, 1, out_dim))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """K MLPs of identical shape (the Q ensemble), each hidden layer Linear -> (Dropout) ->
    LayerNorm -> Mish with its own LayerNorm affine, evaluated together."""

    def __init__(self, k: int, in_dim: int, hidden: list[int], out_dim: int, dropout: float = 0.0):
        super().__init__()
        dims = [in_dim] + list(hidden)
        self.k = k
        self.linears = nn.ModuleList(EnsembleLinear(k, dims[i], dims[i + 1]) for i in range(len(hidden)))
        self.ln_weight = nn.ParameterList(nn.Parameter(torch.ones(k, 1, d)) for d in hidden)
        self.ln_bias = nn.ParameterList(nn.Parameter(torch.zeros(k, 1, d)) for d in hidden)
        self.out = EnsembleLinear(k, dims[-1], out_dim)
        self.dropout = nn.Dropout(dropout) if dropout else None

    def __len__(self) -> int:
        return self.k

    def zero_output(self) -> None:
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, x: torch.Tensor, ctx: torch.Tensor | None = None, heads: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[..., in] -> [K, ..., out]; or x [..., in - C] and ctx [..., C] broadcastable to x's
        leading dims, as if concatenated (the ctx columns are multiplied at ctx's own shape).
        `heads` [k] int64 evaluates only those members -> [k, ..., out] (same values as
        selecting them from all K, at k/K of the cost)."""

        def pick(p: torch.Tensor) -> torch.Tensor:
            return p if heads is None else p.index_select(0, heads)

        k = self.k if heads is None else heads.numel()
        lead = x.shape[:-1]
        h = x.reshape(1, -1, x.shape[-1]).expand(k, -1, -1)
        for i, lin in enumerate(self.linears):
            if not isinstance(lin, EnsembleLinear):
                raise TypeError(f"EnsembleMLP.linears[{i}] must be an EnsembleLinear, got {type(lin).__name__}")
            w, b = pick(lin.weight), pick(lin.bias)
            if i == 0 and ctx is not None:
                n = x.shape[-1]
                c = torch.baddbmm(b, ctx.reshape(1, -1, ctx.shape[-1]).expand(k, -1, -1), w[:, n:])
                c = c.view(k, *[1] * (len(lead) - ctx.dim() + 1), *ctx.shape[:-1], -1)
                h = torch.bmm(h, w[:, :n]).view(k, *lead, -1).add_(c).view(k, -1, w.shape[-1])
            else:
                h = torch.baddbmm(b, h, w)
            if i == 0 and self.dropout is not None:
                h = self.dropout(h)
            h = torch.addcmul(pick(self.ln_bias[i]), F.layer_norm(h, h.shape[-1:]), pick(self.ln_weight[i]))
            h = mish(h)
        return torch.baddbmm(pick(self.out.bias), h, pick(self.out.weight)).reshape(k, *lead, -1)


def init_weights(module: nn.Module) -> None:
    """Truncated-normal(0.02) weights, zero biases (TD-MPC2's init)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.uniform_(module.weight, -0.02, 0.02)


def zero_output_layer(seq: nn.Sequential) -> None:
    """Zero the last Linear's weights so a head starts by predicting the zero-reward/value bin."""
    last = seq[-1]
    if not isinstance(last, nn.Linear):
        raise TypeError(f"zero_output_layer: the last layer must be a Linear, got {type(last).__name__}")
    nn.init.zeros_(last.weight)
    if last.bias is not None:
        nn.init.zeros_(last.bias)
