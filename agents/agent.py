"""The TD-MPC2 agent: a WorldModel, its optimisers and update step, and planning.

`update(batch)` runs one gradient step on a Batch ([H+1, B, O] observations etc.);
`act(obs, task, state)` plans actions for a batch of environments.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, replace

import torch
import torch.nn.functional as F

from agents.batch import Batch
from agents.config import AgentConfig
from agents.planner import PlanInfo, PlannerState
from agents.policy import PlanningPolicy
from agents.precision import autocast_dtype_for, has_native_bf16
from agents.running_scale import RunningScale
from agents.world_model import WorldModel


class Agent:
    """`grad_sync`, if given, is called with a list of parameters after every backward pass and
    before clipping (data-parallel learners average gradients there); `gather_sync` joins a
    tensor across replicas (used for the running Q scale). Both default to single-process no-ops.
    `native_bf16(device) -> bool` decides whether precision=bf16 runs as bf16 or falls back to fp32
    with one warning (default: detected from the hardware, see agents/precision.py)."""

    def __init__(
        self,
        cfg: AgentConfig,
        action_masks: torch.Tensor | None = None,
        *,
        grad_sync=None,
        gather_sync=None,
        native_bf16=has_native_bf16,
    ):
        self.cfg = cfg
        self.grad_sync, self.gather_sync = grad_sync, gather_sync
        self.device = torch.device(cfg.device)
        self.model = WorldModel(cfg.model, action_masks).to(self.device)
        self._build_optimizers()
        self.scale = RunningScale(
            cfg.optim.scale_tau,
            self.device,
            cfg.model.num_tasks if cfg.optim.pi_scale == "task" else 1,
            cfg.optim.pi_scale_init,
        )
        self.discounts = torch.tensor(cfg.discounts, dtype=torch.float32, device=self.device)
        # None (fp32) unless bf16 was asked for and the device runs it natively
        self.autocast_dtype = autocast_dtype_for(cfg.precision, self.device, native_bf16)
        self.updates = 0
        self.model.eval()

    def _build_optimizers(self) -> None:
        """Adam over the parameters that require grad: encoder (scaled lr) + the rest of the world
        model, and the policy prior. A group with nothing trainable gets no optimizer."""
        o, m = self.cfg.optim, self.model
        enc = [p for p in m.encoder.parameters() if p.requires_grad]
        heads = (m.dynamics, m.reward_head, m.qs) + ((m.termination_head,) if m.termination_head is not None else ())
        rest = [p for mod in heads for p in mod.parameters()] + m.task_parameters()
        groups = [{"params": enc, "lr": o.lr * o.enc_lr_scale}] if enc else []
        rest = [p for p in rest if p.requires_grad]
        groups += [{"params": rest}] if rest else []
        # fused: one kernel per step on CPU and GPU (CPU, tiny model: 0.7 vs 4.4 ms per step of the for-loop Adam)
        self.optim = torch.optim.Adam(groups, lr=o.lr, fused=True) if groups else None
        pi = [p for p in m.policy.parameters() if p.requires_grad]
        self.pi_optim = torch.optim.Adam(pi, lr=o.lr, eps=1e-5, fused=True) if pi else None

    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        """Named parameter groups, for choosing what a finetune trains."""
        m = self.model
        return {
            "encoder": list(m.encoder.parameters()),
            "dynamics": list(m.dynamics.parameters()),
            "reward": list(m.reward_head.parameters()),
            "q": list(m.qs.parameters()),
            "policy": list(m.policy.parameters()),
            "termination": list(m.termination_head.parameters()) if m.termination_head is not None else [],
            "task_embedding": list(m.task_emb.parameters()) if m.task_emb is not None else [],
            "descriptor_map": list(m.descriptor_map.parameters()) if m.descriptor_map is not None else [],
        }

    def trainable_groups(self) -> list[str]:
        """Names of the non-empty parameter groups that train (all of them unless set_trainable narrowed it)."""
        return [g for g, params in self.parameter_groups().items() if params and params[0].requires_grad]

    def set_trainable(self, groups: list[str] | str) -> None:
        """Train only `groups` (names of `parameter_groups()`, or "all") from here on; optimisers
        are rebuilt (fresh Adam state). Frozen Q heads also freeze their target network."""
        named = self.parameter_groups()
        groups = list(named) if groups == "all" or groups == ["all"] else list(groups)
        unknown = [g for g in groups if g not in named]
        if unknown:
            raise ValueError(f"unknown parameter groups {unknown}; choose from {sorted(named)} or 'all'")
        empty = [g for g in groups if not named[g]]
        if empty and groups != list(named):
            raise ValueError(
                f"this model has no {empty} parameters (task_conditioning="
                f"{self.cfg.model.task_conditioning!r}, {self.cfg.model.num_tasks} tasks); "
                f"its groups: {[g for g in named if named[g]]}"
            )
        for g, params in named.items():
            for p in params:
                p.requires_grad_(g in groups)
        self._build_optimizers()

    @torch.no_grad()
    def add_tasks(
        self,
        action_masks,
        discounts,
        descriptors=None,
        *,
        init: str = "descriptor",
        nearest: list[int] | None = None,
        language=None,
    ) -> list[int]:
        """Add tasks the model never trained on; returns their ids. Each gets an embedding with no
        training step, chosen by `init`:
          descriptor - the feature map's embedding of the new tasks' `descriptors` [n, Dd] and/or text
                       embeddings `language` [n, E] (whichever the conditioning uses; any but table)
          nearest    - the embedding of existing task `nearest[i]` (a conditioning with a table)
          mean       - the mean embedding of the existing tasks (a conditioning with a table)
        Optimisers are rebuilt (a finetune starts with fresh Adam state)."""
        mc, m = self.cfg.model, self.model
        if not mc.multitask:
            raise ValueError("a single-task model has no task conditioning to extend; train a multitask model")
        masks = torch.as_tensor(action_masks, dtype=torch.float32).reshape(-1, mc.action_dim)
        n, T = masks.shape[0], mc.num_tasks
        if len(discounts) != n:
            raise ValueError(f"{len(discounts)} discounts for {n} new tasks")
        new_desc = None
        if mc.uses_descriptors:
            if descriptors is None:
                raise ValueError(f"task_conditioning={mc.task_conditioning!r}: new tasks need descriptors")
            new_desc = torch.as_tensor(descriptors, dtype=torch.float32, device=self.device).reshape(n, -1)
            if new_desc.shape[1] != mc.descriptor_dim:
                raise ValueError(f"descriptors have {new_desc.shape[1]} features, the model {mc.descriptor_dim}")
        new_lang = None
        if mc.uses_language:
            if language is None:
                raise ValueError(
                    f"task_conditioning={mc.task_conditioning!r}: new tasks need text embeddings "
                    f"(language=, from {mc.language_encoder})"
                )
            new_lang = torch.as_tensor(language, dtype=torch.float32, device=self.device).reshape(n, -1)
            if new_lang.shape[1] != mc.language_dim:
                raise ValueError(
                    f"text embeddings have {new_lang.shape[1]} dims, the model's {mc.language_dim} "
                    f"(encoder {mc.language_encoder})"
                )
        if init == "descriptor":
            if not mc.uses_map:
                raise ValueError(
                    "init='descriptor' needs a task_conditioning with a descriptor or language (this "
                    "model has a table only); use init='nearest' or 'mean'"
                )
            target = None
        elif init in ("nearest", "mean"):
            if not mc.uses_table:
                raise ValueError(
                    f"init={init!r} needs a per-task table (task_conditioning {mc.task_conditioning!r} "
                    f"has none); this model embeds new tasks by their features: init='descriptor'"
                )
            existing = m.all_task_embeddings()
            if init == "mean":
                target = existing.mean(0, keepdim=True).expand(n, -1)
            else:
                if nearest is None or len(nearest) != n or not all(0 <= int(i) < T for i in nearest):
                    raise ValueError(
                        f"init='nearest' needs one existing task id (0..{T - 1}) per new task, got {nearest}"
                    )
                target = existing[torch.as_tensor(nearest, device=self.device)]
        else:
            raise ValueError(f"unknown init {init!r}; use 'descriptor', 'nearest' or 'mean'")
        rows = None
        if mc.uses_table:
            if target is None:
                rows = torch.zeros(n, mc.task_embedding_dim, device=self.device)
            elif mc.uses_map:  # offset so that map + offset = target
                rows = target - m.descriptor_embedding(new_desc, new_lang)
            else:
                rows = target
        # tasks added later never terminate (their head rows were never trained)
        new_mc = replace(
            mc,
            num_tasks=T + n,
            can_terminate=mc.can_terminate and mc.can_terminate + (False,) * n,
            task_descriptors=(mc.task_descriptors + tuple(tuple(r) for r in new_desc.cpu().tolist()))
            if new_desc is not None and mc.task_descriptors is not None  # (set whenever the model uses descriptors)
            else None,
            task_language=(mc.task_language + tuple(tuple(r) for r in new_lang.cpu().tolist()))
            if new_lang is not None and mc.task_language is not None  # (set whenever the model uses language)
            else None,
        )
        m.add_tasks(new_mc, masks, rows)
        self.cfg = replace(
            self.cfg,
            model=new_mc,
            discounts=self.cfg.discounts + tuple(float(d) for d in discounts),
            constraints=self.cfg.constraints and self.cfg.constraints + (None,) * n,
        )
        self.discounts = torch.tensor(self.cfg.discounts, dtype=torch.float32, device=self.device)
        self.scale.add_tasks(n)
        self._build_optimizers()
        return list(range(T, T + n))

    # -- acting -----------------------------------------------------------------------------
    def policy(self) -> PlanningPolicy:
        """This agent's model and planner as a policy (shares the model: no copy)."""
        return PlanningPolicy(self.cfg, model=self.model, autocast_dtype=self.autocast_dtype)

    def new_planner_state(
        self, batch_size: int, seed: int = 0, row_ids: list[int] | None = None, horizon: int | None = None
    ) -> PlannerState:
        return self.policy().new_planner_state(batch_size, seed, row_ids, horizon)

    def act(
        self, obs: torch.Tensor, task: torch.Tensor, state: PlannerState, *, eval_mode: bool = False, planner_cfg=None
    ) -> tuple[torch.Tensor, PlanInfo]:
        """obs [B, O], task [B] -> actions [B, A] (on CPU) and the planner's info."""
        return self.policy().act(obs, task, state, eval_mode=eval_mode, planner_cfg=planner_cfg)

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
        total, consistency, reward_loss, value_loss, extra, zs_t = self._loss_fn()(
            obs, action, reward, task, not_done, rho, gamma
        )
        grad_norm = torch.zeros(())
        if self.optim is not None:
            total.backward()
            params = [p for g in self.optim.param_groups for p in g["params"]]
            if self.grad_sync is not None:
                self.grad_sync(params)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, o.grad_clip_norm)
            self.optim.step()
            self.optim.zero_grad(set_to_none=True)
            m.project_task_embeddings()

        pi_info = self._update_policy(
            zs_t.detach(), task, rho.new_tensor(o.rho) ** torch.arange(H + 1, device=self.device)
        )
        if any(p.requires_grad for p in m.qs.parameters()):  # frozen Q heads: keep their targets too
            m.soft_update_targets(o.tau)
        m.eval()
        self.updates += 1
        stats = {
            "consistency_loss": consistency,
            "reward_loss": reward_loss,
            "value_loss": value_loss,
            "total_loss": total,
            "grad_norm": grad_norm,
            **extra,
            **pi_info,
        }
        # one device sync for all statistics
        values = torch.stack(
            [torch.as_tensor(v, device=self.device).detach().float().reshape(()) for v in stats.values()]
        )
        return dict(zip(stats, values.tolist(), strict=False))

    def world_model_loss(self, obs, action, reward, task, not_done, rho, gamma):
        """Latent consistency, reward and value losses of a batch (shapes as in Batch; reward and
        not_done [H, B, 1], rho [H], gamma [1, B, 1]) -> (total, consistency, reward, value, extra
        losses, latents zs [H+1, B, L]). Targets in eval mode; leaves the model in train mode."""
        o, m = self.cfg.optim, self.model
        H = action.shape[0]
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
            extra = {}
            if m.termination_head is not None:
                zs_term = zs_t[1:].detach() if o.termination_detach else zs_t[1:]
                termination_loss = self._termination_loss(zs_term, task, 1.0 - not_done.squeeze(-1))  # [H, B]
                total = total + o.termination_coef * termination_loss
                extra["termination_loss"] = termination_loss
            if m.cfg.uses_map and m.task_emb is not None:  # the table is an offset on the map
                offset = m.task_emb(task).float().pow(2).sum(-1).mean()
                total = total + o.task_offset_coef * offset
                extra["task_offset_sq"] = offset
        return total, consistency, reward_loss, value_loss, extra, zs_t

    def _loss_fn(self):
        """world_model_loss, eager or torch.compile'd (forward and backward) per cfg.compile_update;
        "reduce-overhead" (CUDA graphs) only on a GPU, plain compile on CPU."""
        mode = self.cfg.compile_update
        if mode == "off":
            return self.world_model_loss
        if getattr(self, "_compiled_loss", None) is None:
            mode = "default" if mode == "reduce-overhead" and self.device.type != "cuda" else mode
            self._compiled_loss = torch.compile(self.world_model_loss, mode=mode, dynamic=False)
        return self._compiled_loss

    def _termination_loss(self, zs: torch.Tensor, task: torch.Tensor, terminated: torch.Tensor) -> torch.Tensor:
        """BCE of the predicted termination of each rolled-out step, zs [H, B, L] (latents after the
        steps), terminated [H, B]; rows of tasks that never terminate carry no weight."""
        m = self.model
        logits = m.termination(zs, task).float().squeeze(-1)  # [H, B]
        pos_weight = torch.tensor(self.cfg.optim.termination_pos_weight, device=logits.device)
        bce = F.binary_cross_entropy_with_logits(logits, terminated.float(), reduction="none", pos_weight=pos_weight)
        weight = m.can_terminate[task].view(1, -1).expand_as(bce)
        return (bce * weight).sum() / weight.sum().clamp(min=1.0)

    def _update_policy(self, zs: torch.Tensor, task: torch.Tensor, rho: torch.Tensor) -> dict[str, torch.Tensor]:
        o, m = self.cfg.optim, self.model
        if self.pi_optim is None:
            return {}
        with self._amp():
            action, info = m.pi(zs, task)
            q = m.Q(zs, action, task, mode="avg", detach=True).float()
            self.scale.update(q[0], self.gather_sync, task)
            q = self.scale(q, task)
            tdmpc2 = o.pi_entropy == "tdmpc2"
            entropy = info["tdmpc2_scaled_entropy" if tdmpc2 else "scaled_entropy"].float()
            objective = o.entropy_coef * entropy + q  # [H+1, B, 1]
            pi_loss = -(objective.mean(dim=(1, 2)) * rho).mean()
        pi_loss.backward()
        if self.grad_sync is not None:
            self.grad_sync(list(m.policy.parameters()))
        grad_norm = torch.nn.utils.clip_grad_norm_(m.policy.parameters(), o.grad_clip_norm)
        self.pi_optim.step()
        if o.pi_task_grad == "keep" and self.optim is not None:
            # TD-MPC2's: the policy loss's gradient on the task conditioning stays in .grad and is applied
            # (summed with the next batch's, clipped with it) by the next world-model step
            self.pi_optim.zero_grad(set_to_none=True)
        else:
            m.zero_grad(set_to_none=True)
        return {
            "pi_loss": pi_loss,
            "pi_grad_norm": grad_norm,
            "pi_entropy": info["tdmpc2_entropy" if tdmpc2 else "entropy"].mean(),
            "pi_scale": self.scale.value.mean(),
        }

    # -- state --------------------------------------------------------------------------------
    def identity(self) -> dict:
        """What a checkpoint must match to be loaded into this agent."""
        mc = self.cfg.model
        return {
            "model_size": mc.model_size,
            "num_tasks": mc.num_tasks,
            "task_conditioning": mc.task_conditioning,
            "obs_dim": mc.obs_dim,
            "action_dim": mc.action_dim,
            "latent_dim": mc.latent_dim,
            "num_q": mc.num_q,
            "termination_head": mc.has_termination_head,
        }

    def state_dict(self) -> dict:
        """Everything needed to resume learning: tensors and plain Python values only."""
        return {
            "identity": self.identity(),
            "model": self.model.state_dict(),
            "optim": self.optim.state_dict() if self.optim is not None else {},
            "pi_optim": self.pi_optim.state_dict() if self.pi_optim is not None else {},
            "scale": self.scale.state_dict(),
            "updates": self.updates,
            # gradients waiting for the next world-model step (optim.pi_task_grad=keep): the policy loss's
            # on the task conditioning; without them a resumed run's next step would differ
            "pending_grads": {
                n: p.grad.detach().clone() for n, p in self.model.named_parameters() if p.grad is not None
            },
            "trainable": self.trainable_groups(),
            "config": _plain(asdict(self.cfg)),
        }

    def load_state_dict(self, state: dict) -> None:
        check_compatible(self.identity(), state.get("identity", {}))
        self.model.load_state_dict(state["model"])
        trainable = state.get("trainable")  # a finetune's checkpoint: its optimisers cover only these groups
        if trainable is not None and list(trainable) != self.trainable_groups():
            self.set_trainable(list(trainable))
        for opt, key in ((self.optim, "optim"), (self.pi_optim, "pi_optim")):
            if opt is not None:
                opt.load_state_dict(state[key])
                for g in opt.param_groups:  # a checkpoint saved by the for-loop Adam restores its flags
                    g["fused"], g["foreach"] = True, None
        self.scale.load_state_dict(state["scale"])
        self.updates = int(state["updates"])
        pending = state.get("pending_grads", {})
        for n, p in self.model.named_parameters():
            p.grad = pending[n].to(p.device, p.dtype).clone() if n in pending else None


def check_compatible(mine: dict, theirs: dict) -> None:
    """Raise a clear error if a checkpoint was made for another model size or task set."""
    # checkpoints from before these switches existed
    theirs = {"task_conditioning": "table", "termination_head": False, **theirs}
    diffs = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
    if diffs:
        lines = ", ".join(f"{k}: checkpoint has {a!r}, this run has {b!r}" for k, (a, b) in diffs.items())
        raise ValueError(
            f"checkpoint does not match this agent ({lines}); load it with the model_size and "
            f"task set it was trained with"
        )


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x
