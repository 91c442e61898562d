"""The decoder-free, task-embedded latent world model (TD-MPC2 architecture).

Components, each conditioned on a task embedding (max-norm 1) when there is more than one
task: a lookup table (TD-MPC2), a map from the task's features (its descriptor: body morphology +
objective, and/or the embedding of its text; this reaches bodies never trained on), or the map
plus a per-task table offset (`ModelConfig.task_conditioning`). The components: encoder (obs -> SimNorm latent), latent dynamics (z, a -> z', SimNorm),
reward head and an ensemble of Q heads (two-hot logits in symlog space), and a squashed
Gaussian policy prior. A per-task action mask zeroes padded action dimensions. A termination
head (z' -> logit) exists only when some task of the set can terminate.

Shapes: `task` is an int64 tensor broadcastable to the leading dims of `z`/`obs`
(e.g. [B] for z [H, B, L], or [B, 1] for z [B, N, L]).
"""

from __future__ import annotations

import contextlib
import copy
import math

import torch
import torch.nn as nn

from agents.config import ModelConfig
from agents.layers import EnsembleMLP, SimNorm, init_weights, mlp, run_mlp, zero_output_layer
from agents.regression import TwoHot

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class WorldModel(nn.Module):
    # buffers (register_buffer), declared for the type checker; the descriptor, language and termination
    # ones exist only when the conditioning uses them / the model has a termination head
    action_masks: torch.Tensor
    task_descriptors: torch.Tensor
    descriptor_mean: torch.Tensor
    descriptor_std: torch.Tensor
    task_language: torch.Tensor
    can_terminate: torch.Tensor
    _embedding_cache: torch.Tensor | None  # set only inside cached_task_embeddings

    def __init__(self, cfg: ModelConfig, action_masks: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        T, A, D, L = cfg.num_tasks, cfg.action_dim, cfg.task_embedding_dim, cfg.latent_dim
        if action_masks is None:
            action_masks = torch.ones(T, A)
        if tuple(action_masks.shape) != (T, A):
            raise ValueError(f"action_masks must be [num_tasks={T}, action_dim={A}], got {tuple(action_masks.shape)}")
        self.register_buffer("action_masks", action_masks.float().clone())
        self.task_emb = self.descriptor_map = None
        if cfg.uses_table:
            # the pure table keeps TD-MPC2's max-norm lookup; as an offset it is unconstrained
            # (the sum is norm-clipped functionally, see task_embedding)
            self.task_emb = nn.Embedding(T, D, max_norm=None if cfg.uses_map else 1.0)
        if cfg.uses_descriptors:
            self.register_buffer("task_descriptors", torch.tensor(cfg.task_descriptors, dtype=torch.float32))
            self.register_buffer("descriptor_mean", torch.tensor(cfg.descriptor_mean, dtype=torch.float32))
            self.register_buffer("descriptor_std", torch.tensor(cfg.descriptor_std, dtype=torch.float32))
        if cfg.uses_language:
            self.register_buffer("task_language", torch.tensor(cfg.task_language, dtype=torch.float32))
        if cfg.uses_map:  # named for its first input; it maps whatever features the conditioning names
            self.descriptor_map = mlp(cfg.feature_dim, [cfg.descriptor_hidden], D)
        enc_hidden = max(cfg.num_enc_layers - 1, 1) * [cfg.enc_dim]
        self.encoder = mlp(cfg.obs_dim + D, enc_hidden, L, out_act=SimNorm(cfg.simnorm_dim))
        self.dynamics = mlp(L + A + D, 2 * [cfg.mlp_dim], L, out_act=SimNorm(cfg.simnorm_dim))
        self.reward_head = mlp(L + A + D, 2 * [cfg.mlp_dim], cfg.num_bins)
        self.policy = mlp(L + D, 2 * [cfg.mlp_dim], 2 * A)
        self.qs = EnsembleMLP(cfg.num_q, L + A + D, 2 * [cfg.mlp_dim], cfg.num_bins, dropout=cfg.dropout)
        self.apply(init_weights)
        if cfg.uses_map and self.task_emb is not None:
            nn.init.zeros_(self.task_emb.weight)  # offsets start at 0: the map alone at first
        zero_output_layer(self.reward_head)
        self.qs.zero_output()
        self.target_qs = copy.deepcopy(self.qs).requires_grad_(False)
        self.two_hot = TwoHot(cfg.num_bins, cfg.vmin, cfg.vmax)
        # created last and from a fork of the CPU generator: the other components draw the same initial
        # weights, and every later draw (dropout, policy noise, ...) the same numbers, with or without it, so
        # a run with the head and one without differ only by what the head does (a paired ablation)
        self.termination_head = None
        if cfg.has_termination_head:
            self.register_buffer("can_terminate", torch.tensor(cfg.can_terminate, dtype=torch.float32))
            with torch.random.fork_rng(devices=[]):
                self.termination_head = mlp(L + D, 2 * [cfg.mlp_dim], 1)
                self.termination_head.apply(init_weights)
            zero_output_layer(self.termination_head)  # logit 0: no termination predicted before training

    # -- conditioning ---------------------------------------------------------------------
    def descriptor_embedding(
        self, descriptors: torch.Tensor | None, language: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The map's embedding of a task's features -> [..., D] (before the offset and clip): raw
        descriptors [..., Dd] (if the conditioning uses them) and text embeddings [..., E] (if it uses
        language); the descriptor is standardised, the text embedding is unit-norm as it is."""
        parts: list[torch.Tensor] = []
        if self.cfg.uses_descriptors:
            if descriptors is None:
                raise ValueError("this model's task conditioning uses descriptors: pass them")
            parts.append((descriptors - self.descriptor_mean) / self.descriptor_std)
        if self.cfg.uses_language:
            if language is None:
                raise ValueError("this model's task conditioning uses language: pass the text embeddings")
            parts.append(language)
        if self.descriptor_map is None:
            raise ValueError("this model's task conditioning has no descriptor map (it uses the table only)")
        return self.descriptor_map(torch.cat(parts, dim=-1))

    @contextlib.contextmanager
    def cached_task_embeddings(self):
        """Within this block (gradients off), the embeddings of all tasks are computed once and
        looked up: the planner calls the model dozens of times per action."""
        if not self.cfg.multitask or torch.is_grad_enabled():
            yield
            return
        if not self.cfg.uses_map:
            # the lookup's max-norm, as a function (no in-place renorm of the table)
            emb = self._table()
            if emb.max_norm is None:
                raise ValueError("a table-only task conditioning has a max-norm task table")
            w = emb.weight
            self._embedding_cache = w * (emb.max_norm / w.norm(dim=-1, keepdim=True).clamp(min=emb.max_norm))
        else:
            self._embedding_cache = self.all_task_embeddings()
        try:
            yield
        finally:
            self._embedding_cache = None

    def task_embedding(self, task: torch.Tensor) -> torch.Tensor:
        """[...] task ids -> [..., D] embeddings of norm <= 1."""
        cache = getattr(self, "_embedding_cache", None)
        if cache is not None:
            return cache[task]
        if not self.cfg.uses_map:
            return self._table()(task)
        emb = self.descriptor_embedding(
            self.task_descriptors[task] if self.cfg.uses_descriptors else None,
            self.task_language[task] if self.cfg.uses_language else None,
        )
        if self.task_emb is not None:
            emb = emb + self.task_emb(task)
        # max-norm 1 as a function (no in-place renorm: data-parallel replicas stay identical)
        return emb * emb.norm(dim=-1, keepdim=True).clamp(min=1.0).reciprocal()

    def _table(self) -> nn.Embedding:
        """The task table (a conditioning without a descriptor map always has one)."""
        if self.task_emb is None:
            raise ValueError(f"task conditioning {self.cfg.task_conditioning!r} has no task table")
        return self.task_emb

    def all_task_embeddings(self) -> torch.Tensor:
        """[num_tasks, D]."""
        return self.task_embedding(torch.arange(self.cfg.num_tasks, device=self.action_masks.device))

    def task_parameters(self) -> list[nn.Parameter]:
        """The parameters that produce task embeddings (table and/or descriptor map)."""
        return [p for mod in (self.task_emb, self.descriptor_map) if mod is not None for p in mod.parameters()]

    def _cond(self, task: torch.Tensor | None) -> torch.Tensor | None:
        """The task embedding [..., D] every component's input is conditioned on (None for
        single-task models). Components treat it as concatenated to their input's last dim, but
        multiply it at its own shape (layers.linear_with_context): one embedding per planner row,
        not one per sample."""
        if not self.cfg.multitask:
            return None
        if task is None:
            raise ValueError("a multitask world model needs task ids")
        return self.task_embedding(task)

    def mask(self, task: torch.Tensor | None) -> torch.Tensor:
        """Action mask rows for `task` ([..., A]); all ones for single-task models."""
        if task is None:
            return self.action_masks[0]
        return self.action_masks[task]

    # -- components -------------------------------------------------------------------------
    def encode(self, obs: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """[..., O] -> [..., L]."""
        return run_mlp(self.encoder, obs, self._cond(task))

    def next(self, z: torch.Tensor, a: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """[..., L], [..., A] -> [..., L]."""
        return run_mlp(self.dynamics, torch.cat([z, a], dim=-1), self._cond(task))

    def reward(self, z: torch.Tensor, a: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """[..., L], [..., A] -> [..., num_bins] logits."""
        return run_mlp(self.reward_head, torch.cat([z, a], dim=-1), self._cond(task))

    def termination(self, z: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """[..., L] latent after a step -> [..., 1] logit that the step ended the episode (needs the head)."""
        if self.termination_head is None:
            raise ValueError(
                "this model has no termination head (no task in its set can terminate, or model.termination_head=false)"
            )
        return run_mlp(self.termination_head, z, self._cond(task))

    def alive(self, z: torch.Tensor, task: torch.Tensor | None, soft: bool = False) -> torch.Tensor:
        """[..., L] latent after a step -> [..., 1]: for a terminating task 0.0 where it is predicted to have
        terminated (logit > 0), else 1.0, or with `soft` the predicted probability of not having
        terminated; exactly 1.0 for tasks that never terminate."""
        flag = self.can_terminate[0] if task is None else self.can_terminate[task].unsqueeze(-1)
        logit = self.termination(z, task)
        return 1.0 - (torch.sigmoid(logit.float()) if soft else (logit > 0).float()) * flag

    def Q(
        self,
        z: torch.Tensor,
        a: torch.Tensor,
        task: torch.Tensor | None,
        *,
        mode: str = "all",
        target: bool = False,
        detach: bool = False,
        heads: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """mode 'all': [num_q, ..., num_bins] logits; 'min'/'avg': [..., 1] values over two heads
        (`heads`, else two random ones); 'mean': [..., 1] mean value over the whole ensemble."""
        if mode not in ("all", "mean", "min", "avg"):
            raise ValueError(f"unknown Q mode {mode!r}; use 'all', 'min', 'avg' or 'mean'")
        if mode in ("min", "avg") and heads is None:
            heads = torch.randperm(self.cfg.num_q, device=z.device)[:2]
        if mode in ("all", "mean") or (heads is not None and heads.numel() == self.cfg.num_q):
            heads = None  # every head (min/avg over all of them do not depend on their order)
        za, ctx = torch.cat([z, a], dim=-1), self._cond(task)
        net = self.target_qs if target else self.qs
        if detach:
            with torch.no_grad():
                params = {n: p.detach() for n, p in net.named_parameters()}
            out = torch.func.functional_call(net, params, (za, ctx), {"heads": heads})
        else:
            out = net(za, ctx, heads=heads)  # min/avg: only the two heads used are evaluated
        if mode == "all":
            return out
        if mode == "mean":
            return self.two_hot.decode(out).mean(0)
        values = self.two_hot.decode(out)
        if mode == "min":
            return values.min(0).values
        return values.mean(0)  # avg

    def pi(
        self, z: torch.Tensor, task: torch.Tensor | None, eps: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Squashed Gaussian policy prior. [..., L] -> action [..., A] in [-1, 1] with padded
        dims exactly 0, and info with 'mean' [..., A], 'log_prob', 'entropy', 'scaled_entropy' [..., 1] (the squashed
        log-prob over active dims), and 'tdmpc2_entropy', 'tdmpc2_scaled_entropy' [..., 1] (TD-MPC2's).
        `eps` ([..., A] standard normal noise) makes sampling reproducible."""
        mean, log_std = run_mlp(self.policy, z, self._cond(task)).chunk(2, dim=-1)
        lo, hi = self.cfg.log_std_min, self.cfg.log_std_max
        log_std = lo + 0.5 * (hi - lo) * (torch.tanh(log_std) + 1)
        mask = self.mask(task).to(mean.dtype)
        if eps is None:
            eps = torch.randn_like(mean)
        mean, log_std, eps = mean * mask, log_std * mask, eps.to(mean.dtype) * mask
        pre = mean + eps * log_std.exp()
        action = torch.tanh(pre)
        # log-prob of the squashed sample, over active dims only
        log_prob = ((-0.5 * eps.pow(2) - log_std - _LOG_SQRT_2PI) * mask).sum(-1, keepdim=True)
        tanh_correction = (torch.log(torch.relu(1 - action.pow(2)) + 1e-6) * mask).sum(-1, keepdim=True)
        log_prob = log_prob - tanh_correction
        active = mask.sum(-1, keepdim=True).expand_as(log_prob)
        # TD-MPC2's bonus (common/world_model.py, `pi`), term for term: the Gaussian log-prob before the tanh
        # correction, summed over every dim (a padded dim has eps = log_std = 0, so it adds -log sqrt(2 pi)),
        # times the active dims, entered as -squashed * (scaled / (squashed + 1e-8)), which is what its
        # gradient flows through
        # (the tanh correction over every dim too: log(1 + 1e-6) per padded dim, which matters where the
        # denominator is near 0)
        gauss_all = (-0.5 * eps.pow(2) - log_std - _LOG_SQRT_2PI).sum(-1, keepdim=True)
        squashed_all = gauss_all - torch.log(torch.relu(1 - action.pow(2)) + 1e-6).sum(-1, keepdim=True)
        tdmpc2_scaled = -squashed_all * ((gauss_all * active) / (squashed_all + 1e-8))
        # "scaled_entropy": the squashed entropy times the active dims (comparable across embodiments)
        return action * mask, {
            "mean": torch.tanh(mean) * mask,
            "log_prob": log_prob,
            "entropy": -log_prob,
            "scaled_entropy": -log_prob * active,
            "tdmpc2_entropy": -squashed_all,
            "tdmpc2_scaled_entropy": tdmpc2_scaled,
        }

    @torch.no_grad()
    def project_task_embeddings(self) -> None:
        """Renormalise every task embedding to norm <= 1. Lookup-time max-norm only touches the rows
        a batch uses, which would let data-parallel replicas drift apart; this touches all rows."""
        if not self.cfg.uses_map and self.task_emb is not None:
            w = self.task_emb.weight
            w.mul_(w.norm(dim=-1, keepdim=True).clamp(min=1.0).reciprocal())

    @torch.no_grad()
    def add_tasks(self, cfg: ModelConfig, action_masks: torch.Tensor, table_rows: torch.Tensor | None) -> None:
        """Grow to `cfg.num_tasks` tasks: `cfg` carries the new tasks' descriptors and text embeddings, `action_masks`
        [n, A] their masks, `table_rows` [n, D] their table rows (offsets for 'both')."""
        n = cfg.num_tasks - self.cfg.num_tasks
        if n <= 0 or tuple(action_masks.shape) != (n, self.cfg.action_dim):
            raise ValueError(
                f"adding {n} tasks needs action masks [{n}, {self.cfg.action_dim}], got {tuple(action_masks.shape)}"
            )
        dev = self.action_masks.device
        self.action_masks = torch.cat([self.action_masks, action_masks.to(dev, torch.float32)])
        if cfg.uses_descriptors:
            self.task_descriptors = torch.tensor(cfg.task_descriptors, dtype=torch.float32, device=dev)
        if cfg.uses_language:
            self.task_language = torch.tensor(cfg.task_language, dtype=torch.float32, device=dev)
        if self.termination_head is not None:
            self.can_terminate = torch.tensor(cfg.can_terminate, dtype=torch.float32, device=dev)
        if self.task_emb is not None:
            if table_rows is None:
                raise ValueError(f"this model has a task table: adding {n} tasks needs their table_rows [{n}, D]")
            old = self.task_emb
            self.task_emb = nn.Embedding(cfg.num_tasks, old.embedding_dim, max_norm=old.max_norm).to(dev)
            self.task_emb.weight.copy_(torch.cat([old.weight, table_rows.to(dev, old.weight.dtype)]))
        self.cfg = cfg

    @torch.no_grad()
    def soft_update_targets(self, tau: float) -> None:
        """Polyak-average the target Q ensemble towards the online one."""
        for tp, p in zip(self.target_qs.parameters(), self.qs.parameters(), strict=False):
            tp.lerp_(p, tau)

    def num_parameters(self) -> int:
        """Trainable parameters (target network excluded)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
