"""Ray actor shells over the plain classes. Nothing here holds algorithm logic: each shell
builds its plain object inside the actor process, sets its torch threads to its CPU share,
and forwards calls. `actor_classes()` creates the `ray.remote` classes on first use so that
importing this module never imports Ray."""
from __future__ import annotations

import numpy as np
import torch

from agents.agent import Agent
from agents.config import AgentConfig
from distributed.env_runner import EnvRunner
from distributed.evaluator import evaluate
from distributed.learner import Learner

RUNNER_EPISODE_KEYS = ("obs", "action", "reward", "terminated", "truncated", "task")


class EnvRunnerShell:
    """An EnvRunner whose finished episodes go straight to its replay shard actor."""

    def __init__(self, agent_cfg: AgentConfig, task_set_name: str, tasks: list[str], shard, *,
                 envs_per_task: int, seed: int, runner_id: int, torch_threads: int,
                 max_episode_steps: int | None):
        from envs import load_task_set

        self.shard = shard
        self.call_s = 0.0
        self._storing = None  # the previous call's add_episodes, overlapped with this call's stepping
        self.runner = EnvRunner(agent_cfg, load_task_set(task_set_name), tasks, envs_per_task=envs_per_task,
                                seed=seed, runner_id=runner_id, torch_threads=torch_threads,
                                max_episode_steps=max_episode_steps)

    def collect(self, num_steps: int, random_actions: bool) -> dict:
        """Step every env `num_steps` times; store finished episodes; return counts and timings."""
        import time

        import ray

        start = time.perf_counter()
        episodes, stats = self.runner.collect(num_steps, random_actions)
        if self._storing is not None:  # the shard must have taken the last call's episodes
            ray.get(self._storing)
            self._storing = None
        if episodes:
            self._storing = self.shard.add_episodes.remote([{k: e[k] for k in RUNNER_EPISODE_KEYS} for e in episodes])
        self.call_s += time.perf_counter() - start
        stats["call_s"] = self.call_s
        stats["steps_this_call"] = num_steps * len(self.runner)
        stats["episodes"] = [(e["task"], e["return"], e["success"], e["length"]) for e in episodes]
        return stats

    def set_weights(self, weights: dict, version: int) -> int:
        self.runner.set_weights(weights, version)
        return version

    def drain(self) -> None:
        """Wait until the shard holds every episode this runner has reported."""
        import ray

        if self._storing is not None:
            ray.get(self._storing)
            self._storing = None

    def weights_version(self) -> int:
        return self.runner.weights_version

    def pid(self) -> int:
        import os

        return os.getpid()


class ShardActorSampler:
    """Samples a learner batch from replay shard actors: rows split across shards in proportion
    to their data (uniform) or to the number of tasks they hold (task-balanced), one request
    kept in flight ahead of use. With `offline` shards, a fixed `offline_ratio` of every batch
    comes from them (all of it when there are no online shards)."""

    def __init__(self, shards: list, seed: int, offline: list | None = None, offline_ratio: float = 0.0):
        self.shards, self.offline = list(shards), list(offline or [])
        self.offline_ratio = 1.0 if not self.shards else (offline_ratio if self.offline else 0.0)
        self.rng = np.random.default_rng(seed)
        self._pending = None

    def _weights(self, shards: list, balance: str) -> np.ndarray:
        import ray

        for attempt in range(2):
            stats = ray.get([s.stats.remote() for s in shards])
            if balance == "task":
                w = np.array([len(s["task_counts"]) for s in stats], float)
            else:
                w = np.array([s["transitions"] for s in stats], float)
            if w.sum() > 0:
                return w / w.sum()
            if attempt == 0:  # episodes may be added but not yet committed: commit them now
                ray.get([s.flush.remote() for s in shards])
        raise RuntimeError("replay is empty: no committed episode to sample from")

    def _request(self, batch_size, horizon, balance, action_masks):
        n_off = int(round(batch_size * self.offline_ratio))
        refs = []
        for shards, n in ((self.shards, batch_size - n_off), (self.offline, n_off)):
            if n == 0:
                continue
            counts = self.rng.multinomial(n, self._weights(shards, balance))
            seeds = self.rng.integers(0, 2**31, len(shards))
            refs += [s.sample.remote(int(k), horizon, balance, action_masks, int(seed))
                     for s, k, seed in zip(shards, counts, seeds) if k > 0]
        return refs

    def sample(self, batch_size: int, horizon: int, rng=None, balance: str = "task", action_masks=None) -> dict:
        import ray

        key = (batch_size, horizon, balance)
        if self._pending is None or self._pending[0] != key:
            self._pending = (key, self._request(batch_size, horizon, balance, action_masks))
        parts = ray.get(self._pending[1])
        self._pending = (key, self._request(batch_size, horizon, balance, action_masks))
        # obs/action/reward/terminated are time-major [H(+1), B, ...]; task/action_mask are [B, ...]
        return {k: np.concatenate([p[k] for p in parts], axis=1 if parts[0][k].ndim >= 2 and k not in
                                  ("task", "action_mask") else 0) for k in parts[0]}


class LearnerShell:
    """A Learner sampling from replay shard actors."""

    def __init__(self, agent_cfg: AgentConfig, action_masks: np.ndarray, shards: list, *, rank: int,
                 world_size: int, seed: int, torch_threads: int, offline_shards: list | None = None,
                 offline_ratio: float = 0.0):
        sampler = ShardActorSampler(shards, seed * 7 + rank, offline_shards, offline_ratio)
        self.learner = Learner(agent_cfg, action_masks, sampler, rank=rank, world_size=world_size, seed=seed,
                               torch_threads=torch_threads)

    def address(self) -> str:
        """host:port for rank 0 to host the process group."""
        import socket

        import ray

        host = ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return f"{host}:{port}"

    def init_process_group(self, init_method: str) -> int:
        return self.learner.init_process_group(init_method)

    def train(self, num_updates: int) -> dict:
        return self.learner.train(num_updates)

    def weights(self) -> dict:
        return self.learner.weights()

    def diagnostics(self, task_names: list[str], obs_dims: list[int], **kw) -> dict:
        return self.learner.diagnostics(task_names, obs_dims, **kw)

    def param_digest(self) -> str:
        return self.learner.param_digest()

    def agent_state(self) -> dict:
        return self.learner.agent.state_dict()

    def load_agent_state(self, state: dict) -> None:
        self.learner.agent.load_state_dict(state)

    def rng_state(self) -> dict:
        return self.learner.rng_state()

    def load_rng_state(self, state: dict) -> None:
        self.learner.load_rng_state(state)


class EvaluatorShell:
    """Evaluates published weights on every task of a set (one batched planner call per step)."""

    def __init__(self, agent_cfg: AgentConfig, task_set_name: str, torch_threads: int):
        from envs import load_task_set

        torch.set_num_threads(torch_threads)
        self.task_set = load_task_set(task_set_name)
        self.agent = Agent(agent_cfg, action_masks=torch.as_tensor(self.task_set.action_masks()))

    def evaluate(self, weights: dict, version: int, *, episodes: int, seed: int, max_steps: int | None,
                 tasks: list[str] | None = None) -> dict:
        self.agent.model.load_state_dict(weights)
        result = evaluate(self.agent, self.task_set, tasks, episodes=episodes, seed=seed, max_steps=max_steps)
        result["weights_version"] = version
        return result


_classes: dict | None = None


def actor_classes() -> dict:
    """{'runner', 'learner', 'evaluator', 'shard'}: the shells as Ray actor classes."""
    global _classes
    if _classes is None:
        import ray

        from distributed.replay.actor import remote_class

        _classes = {"runner": ray.remote(EnvRunnerShell), "learner": ray.remote(LearnerShell),
                    "evaluator": ray.remote(EvaluatorShell), "shard": remote_class()}
    return _classes
