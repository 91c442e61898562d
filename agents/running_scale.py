"""Running scale of Q values (EMA of the P95 - P5 spread), used to normalise the policy loss."""
from __future__ import annotations

import torch


class RunningScale:
    def __init__(self, tau: float, device: torch.device | str = "cpu"):
        self.tau = tau
        self.value = torch.ones(1, device=device)
        self.updates = 0

    def update(self, x: torch.Tensor, gather_sync=None) -> None:
        """Move the scale towards the spread of the batch `x` (any shape); `gather_sync` joins the
        values of all data-parallel replicas, so every replica computes the spread of the global
        batch (the same scale a single process would get on the union of the replicas' batches)."""
        flat = x.detach().float().flatten()
        if gather_sync is not None:
            flat = gather_sync(flat)
        q = torch.quantile(flat, torch.tensor([0.05, 0.95], device=flat.device))
        spread = (q[1] - q[0]).clamp(min=1.0).view(1)
        # the first batch sets the scale; later ones move it slowly
        self.value = spread if self.updates == 0 else torch.lerp(self.value, spread, self.tau)
        self.updates += 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.value

    def state_dict(self) -> dict:
        return {"value": self.value.clone(), "updates": torch.tensor(self.updates)}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"].to(self.value.device).clone()
        self.updates = int(state["updates"])
