"""Ray actor shells over the plain classes. Nothing here holds algorithm logic: each shell
builds its plain object inside the actor process (the learner's shell is a Learner), sets its
torch threads to its CPU share, and forwards calls. `actor_classes()` creates the `ray.remote`
classes on first use so that importing this module never imports Ray."""

from __future__ import annotations

import functools
import os
import socket
import time
import uuid

import numpy as np
import torch

from agents.config import AgentConfig
from agents.host import use_cpu_share
from agents.policy import PlanningPolicy
from distributed.env_runner import EnvRunner, resumed_seed
from distributed.evaluator import Evaluator
from distributed.learner import Learner
from distributed.parts import ray_value

RUNNER_EPISODE_KEYS = ("obs", "action", "reward", "terminated", "truncated", "task", "weights_version")


class EnvRunnerShell:
    """An EnvRunner whose finished episodes go straight to its replay shard actor."""

    def __init__(
        self,
        agent_cfg: AgentConfig,
        task_set_name: str,
        tasks: list[str],
        shard_name: str,
        *,
        envs_per_task: int,
        seed: int,
        runner_id: int,
        torch_threads: int,
        max_episode_steps: int | None,
        piece_horizon: int | None = None,
    ):
        import ray

        from envs import load_task_set

        use_cpu_share(torch_threads)
        self.shard = ray.get_actor(shard_name)  # by name: see distributed/ray_parts.py
        self.piece_horizon = piece_horizon  # hand over running episodes' new windows every call (None: whole)
        self.call_s = 0.0
        # a restarted runner, or a resumed job's, must not collect again the very episodes stored
        # before (same env seeds, same random actions): its seed also depends on what its shard holds
        seed = resumed_seed(seed, ray_value(self.shard.stats.remote())["next_episode_id"])
        task_set = load_task_set(task_set_name)
        policy = PlanningPolicy(agent_cfg, torch.as_tensor(task_set.action_masks()))
        self.runner = EnvRunner(
            policy,
            task_set,
            tasks,
            envs_per_task=envs_per_task,
            seed=seed,
            runner_id=runner_id,
            max_episode_steps=max_episode_steps,
        )
        # episodes are numbered per incarnation of this actor, so the shard stores each exactly once
        # even when Ray retries an add_episodes call (a restarted runner is a new producer)
        self.producer, self.sequence = f"runner{runner_id}-{uuid.uuid4().hex[:12]}", 0
        # episodes handed to the shard and not known committed: a restarted shard lost them, so they
        # are sent again (the shard skips any it holds)
        self._unacked: list[dict] = []
        self._acked = None  # ref of the shard's (incarnation, highest committed sequence) reply
        self._shard_incarnation = None
        self._calls, self._reports = 0, []  # collect calls numbered; their counts until the driver acknowledges

    def node_id(self) -> str:
        """The Ray node this runner runs on."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def current_producer(self) -> str:
        """This incarnation's producer id (a restarted runner has a new one)."""
        return self.producer

    def collect(self, num_steps: int, random_actions: bool, random_tasks=(), ack: tuple | None = None) -> dict:
        """Step every env `num_steps` times; store finished episodes; return counts and timings.

        What the driver counts (env steps, finished episodes) is reported until acknowledged: `reports` holds
        this call's and every earlier one above `ack` = (producer, the last call number the driver received from
        it; another producer's is this actor's previous incarnation's), so a call whose reply was lost (its actor
        unreachable for a moment, the call done) is counted with the next one, and none twice."""
        import ray

        start = time.perf_counter()
        stored, stats = self.runner.collect(num_steps, random_actions, random_tasks, self.piece_horizon)
        if self._shard_incarnation is None:  # which shard incarnation the first episodes go to
            self._shard_incarnation = ray.get(self.shard.committed.remote(self.producer))[0]
        resend = self._settle(ray)
        batch = [
            {**{k: e[k] for k in RUNNER_EPISODE_KEYS}, "source": (self.producer, self.sequence + j)}
            for j, e in enumerate(stored)
        ]
        # what the driver counts, with the finished episodes' (sequence, task) so a lost one can be taken off again
        done = ack[1] if ack is not None and ack[0] == self.producer else -1
        self._reports = [r for r in self._reports if r["call"] > done] + [
            {
                "call": self._calls,
                "collected": stats["collected"],
                "episodes": stats["episodes"],
                "final_sources": [(self.sequence + j, int(e["task"])) for j, e in enumerate(stored) if e["final"]],
            }
        ]
        self._calls += 1
        stats["producer"], stats["reports"] = self.producer, list(self._reports)
        self.sequence += len(batch)
        self._unacked += batch
        if resend or batch:
            # in the shard's hands before the driver counts them: the episodes travel as an object this
            # process owns, which dies with it, so a call that returned while they were in flight would
            # report episodes that a kill of this process then loses (the counters would exceed the store)
            self._hand_over(ray, resend + batch)
        if self._unacked:
            self._acked = self.shard.committed.remote(self.producer)
        self.call_s += time.perf_counter() - start
        stats["call_s"] = self.call_s
        return stats

    def set_weights(self, weights: dict, version: int) -> int:
        self.runner.policy.load_weights(weights, version)
        return version

    def drain(self) -> None:
        """Wait until the shard holds every episode this runner has reported."""
        import ray

        while True:
            ray.get(self.shard.flush.remote())
            self._acked = self.shard.committed.remote(self.producer)
            resend = self._settle(ray)
            if not resend:
                return
            self._hand_over(ray, resend)

    def _hand_over(self, ray, episodes: list[dict]) -> None:
        from ray.exceptions import RayActorError

        try:
            ray.get(self.shard.add_episodes.remote(episodes))
        except RayActorError:  # the shard died with them: they stay unacked, and its restarted incarnation
            pass  # gets them again (_settle), before a checkpoint's drain returns

    def _settle(self, ray) -> list[dict]:
        """Drop the episodes the shard has committed; returns those to send again because the shard
        restarted since they were sent (what it had not committed is gone)."""
        if self._acked is None:
            return []
        incarnation, done, gaps = ray.get(self._acked)
        self._acked = None
        gaps = set(gaps)
        self._unacked = [e for e in self._unacked if e["source"][1] > done or e["source"][1] in gaps]
        restarted = incarnation != self._shard_incarnation
        self._shard_incarnation = incarnation
        return list(self._unacked) if restarted else []

    def pid(self) -> int:
        return os.getpid()


class LearnerShell(Learner):
    """A Learner sampling from replay shard actors, or (offline / mixed) from a store on disk that
    this node can read (opened read-only), or a mixture of the two."""

    def __init__(
        self,
        agent_cfg: AgentConfig,
        action_masks: np.ndarray,
        shards: list,
        *,
        batch_size: int,
        rank: int,
        world_size: int,
        seed: int,
        torch_threads: int,
        balance: str,
        offline_data: str | None = None,
        offline_ratio: float = 0.0,
        cache_bytes: int = 256 << 20,
    ):
        from distributed.batches import Mixture, ShardActorSource, StoreSource

        use_cpu_share(torch_threads)
        source = ShardActorSource(shards, action_masks, balance=balance) if shards else None
        if offline_data:
            offline = StoreSource(
                offline_data, action_masks, agent_cfg.model.obs_dim, balance=balance, cache_bytes=cache_bytes
            )
            source = offline if source is None else Mixture(source, offline, offline_ratio)
        super().__init__(
            agent_cfg, action_masks, source, batch_size=batch_size, rank=rank, world_size=world_size, seed=seed
        )

    def pid(self) -> int:
        """This process's id (fault-injection tests kill it with a real signal)."""
        return os.getpid()

    def address(self) -> str:
        """host:port for rank 0 to host the process group."""
        import ray

        host = ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return f"{host}:{port}"


class EvaluatorShell(Evaluator):
    """An Evaluator of published weights, with its own policy (one batched planner call per step)."""

    def __init__(self, agent_cfg: AgentConfig, task_set_name: str, torch_threads: int):
        from envs import load_task_set

        use_cpu_share(torch_threads)
        task_set = load_task_set(task_set_name)
        super().__init__(PlanningPolicy(agent_cfg, torch.as_tensor(task_set.action_masks())), task_set)


@functools.cache
def actor_classes() -> dict:
    """{'runner', 'learner', 'evaluator', 'shard'}: the shells as Ray actor classes (made once)."""
    import ray

    from distributed.replay.actor import remote_class

    return {
        "runner": ray.remote(EnvRunnerShell),
        "learner": ray.remote(LearnerShell),
        "evaluator": ray.remote(EvaluatorShell),
        "shard": remote_class(),
    }
