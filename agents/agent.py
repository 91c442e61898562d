"""The TD-MPC2 agent: a WorldModel, its optimisers and update step, and planning.

`update(batch)` runs one gradient step on a Batch ([H+1, B, O] observations etc.);
`act(obs, task, state)` plans actions for a batch of environments.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict

import torch
import torch.nn.functional as F

from agents.batch import Batch
from agents.config import AgentConfig
from agents.planner import PlanInfo, PlannerState, plan_batch
from agents.running_scale import RunningScale
from agents.world_model import WorldModel


class Agent:
    """`grad_sync`, if given, is called with a list of parameters after every backward pass and
    before clipping (data-parallel learners average gradients there); `mean_sync` averages a
    tensor across replicas (used for the running Q scale). Both default to single-process no-ops."""

    def __init__(self, cfg: AgentConfig, action_masks: torch.Tensor | None = None, *,
                 grad_sync=None, mean_sync=None):
        self.cfg = cfg
        self.grad_sync, self.mean_sync = grad_sync, mean_sync
        self.device = torch.device(cfg.device)
        self.model = WorldModel(cfg.model, action_masks).to(self.device)
        o, m = cfg.optim, self.model
        self.optim = torch.optim.Adam([
            {"params": m.encoder.parameters(), "lr": o.lr * o.enc_lr_scale},
            {"params": list(m.dynamics.parameters()) + list(m.reward_head.parameters())
             + list(m.qs.parameters()) + (list(m.task_emb.parameters()) if m.task_emb is not None else [])},
        ], lr=o.lr)
        self.pi_optim = torch.optim.Adam(m.policy.parameters(), lr=o.lr, eps=1e-5)
        self.scale = RunningScale(o.scale_tau, self.device)
        self.discounts = torch.tensor(cfg.discounts, dtype=torch.float32, device=self.device)
        self.autocast_dtype = torch.bfloat16 if cfg.precision == "bf16" else None
        self.updates = 0
        self.model.eval()

    # -- acting -----------------------------------------------------------------------------
    def new_planner_state(self, batch_size: int, seed: int = 0, row_ids: list[int] | None = None,
                          horizon: int | None = None) -> PlannerState:
        return PlannerState.create(batch_size, horizon or self.cfg.planner.horizon, self.cfg.model.action_dim,
                                   seed=seed, device=self.device, row_ids=row_ids)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, task: torch.Tensor, state: PlannerState, *, eval_mode: bool = False,
            planner_cfg=None) -> tuple[torch.Tensor, PlanInfo]:
        """obs [B, O], task [B] -> actions [B, A] (on CPU) and the planner's info."""
        action, info = plan_batch(self.model, obs.to(self.device, torch.float32), task.to(self.device), state,
                                  planner_cfg or self.cfg.planner, self.discounts, eval_mode=eval_mode,
                                  autocast_dtype=self.autocast_dtype)
        return action.cpu(), info

    def _amp(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    # -- learning ---------------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, float]:
        """One gradient step of the world model and one of the policy prior."""
        o, m = self.cfg.optim, self.model
        H = batch.horizon
        obs, action, reward, task = batch.obs, batch.action, batch.reward.unsqueeze(-1), batch.task
        not_done = 1.0 - batch.terminated.unsqueeze(-1)
        rho = o.rho ** torch.arange(H, device=self.device, dtype=torch.float32)
        gamma = self.discounts[task].view(1, -1, 1)
        with self._amp():
            with torch.no_grad():
                next_z = m.encode(obs[1:], task)  # [H, B, L]
                next_a, _ = m.pi(next_z, task)
                td_target = reward + gamma * not_done * m.Q(next_z, next_a, task, mode="min", target=True).float()
            m.train()
            z = m.encode(obs[0], task)
            zs = [z]
            consistency = 0.0
            for t in range(H):
                z = m.next(z, action[t], task)
                consistency = consistency + rho[t] * F.mse_loss(z.float(), next_z[t].float())
                zs.append(z)
            zs_t = torch.stack(zs)  # [H+1, B, L]
            q_logits = m.Q(zs_t[:-1], action, task, mode="all")  # [num_q, H, B, bins]
            r_logits = m.reward(zs_t[:-1], action, task)  # [H, B, bins]
            reward_loss = (m.two_hot.cross_entropy(r_logits, reward).mean(dim=(1, 2)) * rho).sum()
            value_ce = m.two_hot.cross_entropy(q_logits, td_target.unsqueeze(0).expand(len(m.qs), -1, -1, -1))
            value_loss = (value_ce.mean(dim=(2, 3)) * rho).sum(1).mean()
            consistency, reward_loss, value_loss = consistency / H, reward_loss / H, value_loss / H
            total = o.consistency_coef * consistency + o.reward_coef * reward_loss + o.value_coef * value_loss
        total.backward()
        params = [p for g in self.optim.param_groups for p in g["params"]]
        if self.grad_sync is not None:
            self.grad_sync(params)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, o.grad_clip_norm)
        self.optim.step()
        self.optim.zero_grad(set_to_none=True)
        m.project_task_embeddings()

        pi_info = self._update_policy(zs_t.detach(), task, rho.new_tensor(o.rho) ** torch.arange(H + 1, device=self.device))
        m.soft_update_targets(o.tau)
        m.eval()
        self.updates += 1
        stats = {"consistency_loss": consistency, "reward_loss": reward_loss, "value_loss": value_loss,
                 "total_loss": total, "grad_norm": grad_norm, **pi_info}
        # one device sync for all statistics
        values = torch.stack([torch.as_tensor(v, device=self.device).detach().float().reshape(()) for v in stats.values()])
        return dict(zip(stats, values.tolist()))

    def _update_policy(self, zs: torch.Tensor, task: torch.Tensor, rho: torch.Tensor) -> dict[str, torch.Tensor]:
        o, m = self.cfg.optim, self.model
        with self._amp():
            action, info = m.pi(zs, task)
            q = m.Q(zs, action, task, mode="avg", detach=True).float()
            self.scale.update(q[0], self.mean_sync)
            q = self.scale(q)
            objective = o.entropy_coef * info["scaled_entropy"].float() + q  # [H+1, B, 1]
            pi_loss = -(objective.mean(dim=(1, 2)) * rho).mean()
        pi_loss.backward()
        if self.grad_sync is not None:
            self.grad_sync(list(m.policy.parameters()))
        grad_norm = torch.nn.utils.clip_grad_norm_(m.policy.parameters(), o.grad_clip_norm)
        self.pi_optim.step()
        self.pi_optim.zero_grad(set_to_none=True)
        return {"pi_loss": pi_loss, "pi_grad_norm": grad_norm, "pi_entropy": info["entropy"].mean(),
                "pi_scale": self.scale.value}

    # -- state --------------------------------------------------------------------------------
    def identity(self) -> dict:
        """What a checkpoint must match to be loaded into this agent."""
        mc = self.cfg.model
        return {"model_size": mc.model_size, "num_tasks": mc.num_tasks, "obs_dim": mc.obs_dim,
                "action_dim": mc.action_dim, "latent_dim": mc.latent_dim, "num_q": mc.num_q}

    def state_dict(self) -> dict:
        """Everything needed to resume learning: tensors and plain Python values only."""
        return {"identity": self.identity(), "model": self.model.state_dict(),
                "optim": self.optim.state_dict(), "pi_optim": self.pi_optim.state_dict(),
                "scale": self.scale.state_dict(), "updates": self.updates,
                "config": _plain(asdict(self.cfg))}

    def load_state_dict(self, state: dict) -> None:
        check_compatible(self.identity(), state.get("identity", {}))
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.pi_optim.load_state_dict(state["pi_optim"])
        self.scale.load_state_dict(state["scale"])
        self.updates = int(state["updates"])


def check_compatible(mine: dict, theirs: dict) -> None:
    """Raise a clear error if a checkpoint was made for another model size or task set."""
    diffs = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
    if diffs:
        lines = ", ".join(f"{k}: checkpoint has {a!r}, this run has {b!r}" for k, (a, b) in diffs.items())
        raise ValueError(f"checkpoint does not match this agent ({lines}); load it with the model_size and "
                         f"task set it was trained with")


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x
