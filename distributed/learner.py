"""Learner: one data-parallel replica of the Agent. Plain class; `distributed/actors.py` wraps
it as a Ray actor. Ranks form a torch.distributed group (gloo on CPU, NCCL on GPU).

`batch_size` is the GLOBAL batch: each of N ranks samples batch_size / N windows,
gradients are averaged and the running Q scale is computed over the gathered Q values, so one
update of the group is one optimiser step on the union of the ranks' batches (what a single
process does with that batch; the learning rate therefore needs no scaling with N), and every
rank holds identical parameters after every step. `updates` counts optimiser steps."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from agents.agent import Agent
from agents.batch import Batch
from agents.config import AgentConfig


def _grad_sync(world_size: int):
    def sync(params: list[torch.nn.Parameter]) -> None:
        grads: list[torch.Tensor] = []
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        flat = _flatten_dense_tensors(grads)  # one all-reduce for the whole model
        dist.all_reduce(flat)
        flat /= world_size
        for g, synced in zip(grads, _unflatten_dense_tensors(flat, grads), strict=False):
            g.copy_(synced)

    return sync


def _gather_sync(world_size: int):
    def sync(t: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(t) for _ in range(world_size)]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    return sync


class Learner:
    """`source` is a batch source (distributed/batches.py): `.sample(batch_size, horizon, rng)`
    returns the arrays of agents.batch; windows are the planner's horizon long. `batch_size` is the
    global batch of one update. `agent` (optional, single process only) continues an existing agent
    instead of building a fresh one."""

    def __init__(
        self,
        agent_cfg: AgentConfig,
        action_masks: np.ndarray,
        source,
        *,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        agent: Agent | None = None,
    ):
        torch.manual_seed(seed * 1000 + rank)
        if batch_size % world_size:
            raise ValueError(
                f"batch_size {batch_size} (global) does not split over {world_size} "
                f"learners; use a multiple of num_learners"
            )
        self.batch_size = int(batch_size)
        self.rank, self.world_size = rank, world_size
        self.source = source
        self.masks = np.asarray(action_masks, np.float32)
        self.rng = np.random.default_rng([seed, rank])
        self.agent_cfg = agent_cfg
        self.agent: Agent | None = None
        self.sample_s = self.update_s = 0.0
        if agent is not None:
            if world_size != 1:
                raise ValueError("a given agent can only be continued by a single learner")
            self.agent = agent
        elif world_size == 1:
            self._build_agent()

    def init_process_group(self, init_method: str) -> int:
        """Join the group (all ranks must call this concurrently). Returns the rank."""
        backend = "nccl" if self.agent_cfg.device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, init_method=init_method, rank=self.rank, world_size=self.world_size)
        agent = self._build_agent()
        # start from rank 0's initial parameters
        for t in list(agent.model.parameters()) + list(agent.model.buffers()):
            dist.broadcast(t.data, src=0)
        return self.rank

    def _build_agent(self) -> Agent:
        multi = self.world_size > 1
        self.agent = Agent(
            self.agent_cfg,
            action_masks=torch.tensor(self.masks),
            grad_sync=_grad_sync(self.world_size) if multi else None,
            gather_sync=_gather_sync(self.world_size) if multi else None,
        )
        return self.agent

    def built_agent(self) -> Agent:
        """The agent: built in __init__ for a single learner, in init_process_group for a group's ranks."""
        if self.agent is None:
            raise RuntimeError("this learner has no agent yet: a learner group's ranks build it in init_process_group")
        return self.agent

    def train(self, num_updates: int) -> dict:
        """Run `num_updates` updates (every rank must be asked for the same number)."""
        info: dict = {}
        agent = self.built_agent()
        for _ in range(num_updates):
            t0 = time.perf_counter()
            arrays = self.source.sample(self.batch_size // self.world_size, self.agent_cfg.planner.horizon, self.rng)
            batch = Batch.from_numpy(arrays, agent.device)
            t1 = time.perf_counter()
            info = agent.update(batch)
            self.sample_s += t1 - t0
            self.update_s += time.perf_counter() - t1
        return {**info, "updates": agent.updates, "sample_s": self.sample_s, "update_s": self.update_s}

    def diagnostics(
        self,
        task_names: list[str],
        obs_dims: list[int],
        *,
        per_task: int = 64,
        audit_states: int = 4,
        out_dir: str | None = None,
    ) -> dict[str, float]:
        """Per-task latent diagnostics and planner audits on fresh replay windows of 2H+1 steps
        (rank 0's job). Returns flat scalars (`diag/<task>/<metric>`); writes the full report
        (JSON, PNGs, summary.md) to `out_dir` if given."""
        from agents.diagnostics.report import write_report
        from agents.diagnostics.run import run_diagnostics, scalars, split_by_task

        H = self.agent_cfg.planner.horizon
        arrays = self.source.sample(per_task * len(task_names), 2 * H, self.rng, balance="task")
        agent = self.built_agent()
        results = run_diagnostics(
            agent,
            split_by_task(arrays, task_names),
            obs_dims=dict(zip(task_names, obs_dims, strict=False)),
            max_samples=per_task,
            audit_states=audit_states,
            seed=agent.updates,
        )
        if out_dir is not None:
            from distributed.storage import local_staging

            with local_staging(out_dir) as d:  # the report's writers need a file system; uploaded to a URI after
                write_report(results, d)
        return scalars(results)

    def weights(self) -> dict[str, torch.Tensor]:
        """The world model's parameters and buffers on CPU (what runners load)."""
        return {k: v.detach().cpu().clone() for k, v in self.built_agent().model.state_dict().items()}

    def agent_state(self) -> dict:
        return self.built_agent().state_dict()

    def load_agent_state(self, state: dict) -> None:
        self.built_agent().load_state_dict(state)

    def replay_damage(self) -> dict:
        """What damaged replay data cost the source: see distributed.batches.StoreSource.damage."""
        return self.source.damage()

    def param_digest(self) -> str:
        """SHA-256 of every parameter's bytes: equal digests mean identical replicas."""
        h = hashlib.sha256()
        for p in self.built_agent().model.parameters():
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def rng_state(self) -> dict:
        """This rank's sampling and torch random states (JSON-able / a uint8 tensor)."""
        return {"numpy": json.dumps(self.rng.bit_generator.state), "torch": torch.get_rng_state()}

    def load_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = json.loads(state["numpy"])
        torch.set_rng_state(state["torch"])
