"""What acts in an environment: a world model and the planner, no optimisers.

Env runners and evaluators hold a `PlanningPolicy`. In one process it shares the learner's
WorldModel (no weight copies); in a Ray actor it owns a model that loads published weights.
"""

from __future__ import annotations

from typing import Literal

import torch

from agents.config import AgentConfig
from agents.planner import ConstraintTable, PlanInfo, PlannerState, plan_batch, prior_action, project_sequences
from agents.precision import autocast_dtype_for
from agents.world_model import WorldModel


class PlanningPolicy:
    def __init__(
        self,
        cfg: AgentConfig,
        action_masks: torch.Tensor | None = None,
        *,
        model: WorldModel | None = None,
        autocast_dtype: torch.dtype | None | Literal["auto"] = "auto",
    ):
        """`model` (optional) is shared, e.g. the learner's own; else a new one is built on cfg.device.
        `autocast_dtype` "auto": from cfg.precision and what the device supports (agents/precision.py)."""
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        self.model = model if model is not None else WorldModel(cfg.model, action_masks).to(self.device).eval()
        self.discounts = torch.tensor(cfg.discounts, dtype=torch.float32, device=self.device)
        self.autocast_dtype = (
            autocast_dtype_for(cfg.precision, self.device) if autocast_dtype == "auto" else autocast_dtype
        )
        self.weights_version = -1
        # per-task action limits (cfg.constraints); None: the planner runs exactly as unconstrained
        self.constraints = (
            None if cfg.constraints is None else ConstraintTable(cfg.constraints, cfg.model.action_dim, self.device)
        )

    def load_weights(self, model_state: dict, version: int) -> None:
        """Load published world-model weights (a WorldModel state dict) unless already at `version`."""
        if version != self.weights_version:
            self.model.load_state_dict(model_state)
            self.weights_version = version

    def new_planner_state(
        self, batch_size: int, seed: int = 0, row_ids: list[int] | None = None, horizon: int | None = None
    ) -> PlannerState:
        return PlannerState.create(
            batch_size,
            horizon or self.cfg.planner.horizon,
            self.cfg.model.action_dim,
            seed=seed,
            device=self.device,
            row_ids=row_ids,
        )

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, task: torch.Tensor, state: PlannerState, *, eval_mode: bool = False, planner_cfg=None
    ) -> tuple[torch.Tensor, PlanInfo]:
        """obs [B, O], task [B] -> actions [B, A] (on CPU) and the planner's info."""
        task = task.to(self.device)
        action, info = plan_batch(
            self.model,
            obs.to(self.device, torch.float32),
            task,
            state,
            planner_cfg or self.cfg.planner,
            self.discounts,
            eval_mode=eval_mode,
            autocast_dtype=self.autocast_dtype,
            constraints=None if self.constraints is None else self.constraints.for_rows(task),
        )
        return action.cpu(), info

    @torch.no_grad()
    def act_prior(
        self, obs: torch.Tensor, task: torch.Tensor, state: PlannerState, *, eval_mode: bool = False
    ) -> torch.Tensor:
        """Act with the policy prior alone (no planning), constrained like `act`: obs [B, O], task [B]
        -> actions [B, A] on CPU."""
        task = task.to(self.device)
        return prior_action(
            self.model,
            obs.to(self.device, torch.float32),
            task,
            state,
            eval_mode=eval_mode,
            constraints=None if self.constraints is None else self.constraints.for_rows(task),
        ).cpu()

    def feasible(self, actions: torch.Tensor, task: torch.Tensor, state: PlannerState) -> torch.Tensor:
        """actions [B, A] (e.g. random seeding actions) projected onto the rows' constraints, measured
        from the rows' previous executed actions (not recorded: see `record_actions`). Unchanged if
        the policy has no constraints."""
        if self.constraints is None:
            return actions
        c = self.constraints.for_rows(task.to(self.device))
        B, A = actions.shape
        a = actions.to(self.device, torch.float32).view(B, 1, 1, A)
        return project_sequences(a, *c.first_reference(state), c).view(B, A).to(actions.device)

    def record_actions(self, actions: torch.Tensor, state: PlannerState) -> None:
        """actions [B, A] were executed (constrained policies only track them: the rate limit's reference)."""
        if self.constraints is not None:
            state.record_actions(actions)
