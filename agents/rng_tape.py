"""Record the random draws of one computation and replay them, in order, in another.

The fidelity check against TD-MPC2's own code (bench/fidelity.py, tests/agents/test_tdmpc2_fidelity.py)
runs one update in TD-MPC2's agent and the same update in ours from the same weights and batch. The two
draw the same random numbers for different reasons in a different order: the policy's noise
(`torch.randn_like`), the pair of Q heads (`torch.randperm`) and the Q ensemble's dropout masks. A
RandomTape recorded around TD-MPC2's update holds each draw; replayed around ours, every draw of a kind
is served in order, so both updates see the same noise, the same heads and the same masks.

Dropout is recorded per Q-ensemble call as one mask per head (TD-MPC2's ensemble is evaluated head by
head while recording: see `RandomTape.ensemble_call`); replayed into our EnsembleMLP, a call that
evaluates only some heads (`heads=`) gets those heads' masks. A draw that does not match the tape (another
kind, shape or count) raises TapeMismatch naming both: the two updates no longer draw the same randomness.

Nothing here is used by training; it only patches torch while a `recording()` / `replaying()` block runs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn as nn


class TapeMismatch(RuntimeError):
    """A replayed computation asked for a random draw the recorded one did not make."""


@dataclass
class RandomTape:
    randn: list[torch.Tensor] = field(default_factory=list)  # torch.randn_like outputs, in order
    perm: list[torch.Tensor] = field(default_factory=list)  # torch.randperm outputs, in order
    dropout: list[list[torch.Tensor]] = field(default_factory=list)  # per ensemble call: one bool mask per head

    def state_dict(self) -> dict:
        return {"randn": list(self.randn), "perm": list(self.perm), "dropout": [list(g) for g in self.dropout]}

    @classmethod
    def from_state_dict(cls, state: dict) -> RandomTape:
        return cls(list(state["randn"]), list(state["perm"]), [list(g) for g in state["dropout"]])

    # -- recording ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def recording(self):
        """Every torch.randn_like, torch.randperm and (training-mode) nn.Dropout call inside is recorded;
        dropout calls must happen inside `ensemble_call()` blocks, one call per head."""
        real_randn, real_perm = torch.randn_like, torch.randperm
        real_dropout = nn.Dropout.forward
        self._group: list[torch.Tensor] | None = None

        def randn_like(x, *a, **k):
            out = real_randn(x, *a, **k)
            self.randn.append(out.detach().clone())
            return out

        def randperm(n, *a, **k):
            out = real_perm(n, *a, **k)
            self.perm.append(out.detach().clone())
            return out

        tape = self

        # named as nn.Dropout.forward's parameters (`self` is the module): it replaces that method
        def dropout(self: nn.Dropout, input: torch.Tensor) -> torch.Tensor:
            module, x = self, input
            if not module.training or module.p == 0:
                return x
            if tape._group is None:
                raise TapeMismatch(
                    "a dropout outside a recorded ensemble call: wrap each call of the Q ensemble "
                    "in RandomTape.ensemble_call() and evaluate it head by head"
                )
            mask = torch.rand_like(x) >= module.p
            tape._group.append(mask)
            return x * mask.to(x.dtype) / (1 - module.p)

        torch.randn_like, torch.randperm, nn.Dropout.forward = randn_like, randperm, dropout
        try:
            yield self
        finally:
            torch.randn_like, torch.randperm, nn.Dropout.forward = real_randn, real_perm, real_dropout

    @contextlib.contextmanager
    def ensemble_call(self):
        """While recording: the dropout masks drawn inside are one ensemble call's, one per head in order."""
        self._group = []
        try:
            yield
        finally:
            if self._group:
                self.dropout.append(self._group)
            self._group = None

    # -- replaying ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def replaying(self):
        """Serve the recorded draws in order to torch.randn_like, torch.randperm and the dropout of our
        EnsembleMLP (agents/layers.py); the tape is consumed. On leaving, every recorded draw must have been
        used."""
        from agents.layers import EnsembleMLP

        randn, perm, drops = list(self.randn), list(self.perm), list(self.dropout)
        real_randn, real_perm = torch.randn_like, torch.randperm
        real_dropout, real_forward = nn.Dropout.forward, EnsembleMLP.forward
        heads_now: list = [None]

        def take(queue: list, kind: str, shape) -> torch.Tensor:
            if not queue:
                raise TapeMismatch(
                    f"ours drew {kind} of shape {tuple(shape)} where the recorded update drew no more {kind}"
                )
            out = queue.pop(0)
            return out

        def randn_like(x, *a, **k):
            out = take(randn, "torch.randn_like", x.shape)
            if out.shape != x.shape:
                raise TapeMismatch(
                    f"ours drew torch.randn_like of shape {tuple(x.shape)} where the recorded update "
                    f"drew {tuple(out.shape)}: the draws come in another order"
                )
            return out.to(x.device, x.dtype if x.is_floating_point() else out.dtype)

        def randperm(n, *a, device=None, **k):
            out = take(perm, "torch.randperm", (n,))
            if out.numel() != n:
                raise TapeMismatch(
                    f"ours drew torch.randperm({n}) where the recorded update drew randperm({out.numel()})"
                )
            return out.to(device) if device is not None else out

        # named as the methods' parameters (`self` is the module): they replace EnsembleMLP.forward and
        # nn.Dropout.forward
        def forward(
            self: EnsembleMLP, x: torch.Tensor, ctx: torch.Tensor | None = None, heads: torch.Tensor | None = None
        ) -> torch.Tensor:
            module = self
            heads_now[0] = heads
            try:
                return real_forward(module, x, ctx, heads)
            finally:
                heads_now[0] = None

        def dropout(self: nn.Dropout, input: torch.Tensor) -> torch.Tensor:
            module, x = self, input
            if not module.training or module.p == 0:
                return x
            group = take(drops, "a dropout mask", x.shape)
            heads = heads_now[0]
            picked = group if heads is None else [group[int(i)] for i in heads]
            mask = torch.stack([m.reshape(-1, m.shape[-1]) for m in picked])
            if mask.shape != x.shape:
                raise TapeMismatch(
                    f"our ensemble's dropout is {tuple(x.shape)}, the recorded masks stack to {tuple(mask.shape)}"
                )
            return x * mask.to(x.device, x.dtype) / (1 - module.p)

        torch.randn_like, torch.randperm = randn_like, randperm
        nn.Dropout.forward, EnsembleMLP.forward = dropout, forward
        try:
            yield self
        finally:
            torch.randn_like, torch.randperm = real_randn, real_perm
            nn.Dropout.forward, EnsembleMLP.forward = real_dropout, real_forward
        left = {k: len(q) for k, q in (("randn_like", randn), ("randperm", perm), ("dropout", drops)) if q}
        if left:
            raise TapeMismatch(f"ours left recorded draws unused: {left}")
