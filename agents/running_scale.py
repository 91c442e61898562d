"""Running scale of Q values (EMA of the P95 - P5 spread), used to normalise the policy loss.

With `num_tasks` > 1 every task keeps a scale of its own: the policy loss divides each row's Q by
its own task's spread, so a task whose returns are small (sparse or not yet found) still drives the
policy as strongly as one whose returns are in the hundreds. One scale shared by all tasks (TD-MPC2's
multitask runs, the default here: optim.pi_scale) makes the policy's objective a sum dominated by the largest-return tasks: in a
6-task tiny run the shared scale settled at ~124 (the cartpole tasks) while the single-task models of
the other tasks ran at 2-37. With one task both forms are the same computation."""

from __future__ import annotations

import torch

QUANTILES = (0.05, 0.95)


class RunningScale:
    def __init__(self, tau: float, device: torch.device | str = "cpu", num_tasks: int = 1, init: str = "one"):
        """`init`: "one" (TD-MPC2's: the scale starts at 1 and every batch moves it by `tau`) or "first_batch"
        (a task's first batch sets its scale, later ones move it by `tau`)."""
        if init not in ("one", "first_batch"):
            raise ValueError(f"running scale init must be 'one' or 'first_batch', got {init!r}")
        self.tau, self.init = tau, init
        self.value = torch.ones(num_tasks, device=device)
        self.counts = torch.zeros(num_tasks, dtype=torch.long, device=device)  # batches seen, per task

    @property
    def updates(self) -> int:
        return int(self.counts.max())

    def update(self, x: torch.Tensor, gather_sync=None, task: torch.Tensor | None = None) -> None:
        """Move the scale towards the spread of the batch `x` ([B, ...]; rows of task `task` [B]).
        `gather_sync` joins the values of all data-parallel replicas, so every replica computes the
        spread of the global batch (the same scale a single process would get on the union of the
        replicas' batches). Tasks absent from the batch keep their scale."""
        if self.value.numel() == 1:
            flat = x.detach().float().flatten()
            if gather_sync is not None:
                flat = gather_sync(flat)
            q = torch.quantile(flat, torch.tensor(QUANTILES, device=flat.device))
            self._move(torch.ones(1, dtype=torch.bool, device=flat.device), (q[1] - q[0]).view(1))
            return
        if task is None:
            raise ValueError("a per-task running scale needs the task of every row")
        rows = x.detach().float().reshape(x.shape[0], -1)
        pairs = torch.cat([rows, task.view(-1, 1).to(rows.dtype)], dim=1)
        if gather_sync is not None:
            pairs = gather_sync(pairs)
        vals = pairs[:, :-1].flatten()
        ids = pairs[:, -1:].expand(-1, rows.shape[1]).flatten().long()
        self._move(*_per_task_spread(vals, ids, self.value.numel()))

    def _move(self, present: torch.Tensor, spread: torch.Tensor) -> None:
        spread = spread.clamp(min=1.0)
        moved = torch.lerp(self.value, spread, self.tau)
        if self.init == "first_batch":  # a task's first batch sets its scale; later ones move it slowly
            moved = torch.where(self.counts == 0, spread, moved)
        self.value = torch.where(present, moved, self.value)
        self.counts = self.counts + present.long()

    def add_tasks(self, n: int) -> None:
        """Room for `n` new tasks (a per-task scale only): each starts at 1 (or from its first batch)."""
        if self.value.numel() > 1:
            self.value = torch.cat([self.value, self.value.new_ones(n)])
            self.counts = torch.cat([self.counts, self.counts.new_zeros(n)])

    def __call__(self, x: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        """x [..., B, 1] divided by the scale of each row's task (task [B])."""
        if self.value.numel() == 1:
            return x / self.value
        return x / self.value[task].view(-1, 1)

    def state_dict(self) -> dict:
        return {"value": self.value.clone(), "counts": self.counts.clone(), "updates": torch.tensor(self.updates)}

    def load_state_dict(self, state: dict) -> None:
        value = state["value"].to(self.value.device)
        n = self.value.numel()
        if value.numel() not in (1, n):
            raise ValueError(
                f"the checkpoint's running Q scale has {value.numel()} entries, this agent {n}: "
                f"load it with the task set it was trained with"
            )
        # a checkpoint with one scale (older, or pi_scale=global) starts every task from it
        self.value = value.expand(n).clone()
        counts = state.get("counts")
        self.counts = (
            counts.to(self.counts.device).expand(n).clone()
            if counts is not None
            else torch.full_like(self.counts, int(state["updates"]))
        )


def _per_task_spread(vals: torch.Tensor, ids: torch.Tensor, num_tasks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """P95 - P5 of `vals` per task id (linear interpolation, as torch.quantile), in a fixed number of
    kernels whatever the number of tasks (no per-task loop, no host sync). Returns (present [T], spread [T])."""
    order = torch.argsort(vals, stable=True)
    order = order[torch.argsort(ids[order], stable=True)]  # by task, ascending values within a task
    v = vals[order]
    counts = torch.bincount(ids, minlength=num_tasks)
    starts = torch.cumsum(counts, 0) - counts
    last = (counts - 1).clamp(min=0)
    out = []
    for p in QUANTILES:
        pos = p * last.to(v.dtype)
        lo = pos.floor().long()
        hi = torch.minimum(lo + 1, last)
        frac = pos - lo.to(v.dtype)
        a = v[(starts + lo).clamp(max=v.numel() - 1)]
        b = v[(starts + hi).clamp(max=v.numel() - 1)]
        out.append(a + frac * (b - a))
    return counts > 0, out[1] - out[0]
