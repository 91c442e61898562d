"""The loop's parts in one process: an env runner writing one replay shard, one Learner, and the
evaluator, all sharing ONE world model (the learner's: the runner plans with the weights of the
last update, and nothing is copied). Every call runs to the end and returns a finished Job,
so the loop runs collection, learning and evaluation in turn. Debug a run here."""

from __future__ import annotations

import numpy as np

from agents.host import use_cpu_share
from distributed.parts import Evaluators, Job, Learners, NoCollector, Parts, usable_shards


class LocalCollector:
    """One EnvRunner over the run's tasks; finished episodes are committed to the run's shard."""

    slots = 1

    def __init__(self, runner, writer, on_commit, piece_horizon: int | None = None):
        self.runner, self.writer, self.on_commit = runner, writer, on_commit
        self.piece_horizon = piece_horizon

    def collect(self, slot: int, num_steps: int, seeding: bool, random_tasks=()) -> Job:
        stored, stats = self.runner.collect(num_steps, seeding, random_tasks, self.piece_horizon)
        for ep in stored:
            self.writer.add_episode(
                ep["obs"],
                ep["action"],
                ep["reward"],
                ep["terminated"],
                ep["truncated"],
                ep["task"],
                version=ep["weights_version"],
            )
        if stored:
            self.writer.flush()
            self.on_commit()
        return Job({**stats, "call_s": stats["wall_s"]})

    def set_weights(self, weights, version: int) -> None:
        self.runner.policy.weights_version = version  # the model is shared: nothing to load

    def drain(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        self.runner.close()


def check(cfg, task_set) -> None:
    """Nothing to refuse beyond the run config's own checks: every task this machine can build runs here."""


def build(loop) -> Parts:
    """The in-process parts of `loop` (a distributed.loop.Loop) for its config."""
    from distributed.batches import Mixture, StoreSource
    from distributed.env_runner import EnvRunner, resumed_seed
    from distributed.evaluator import Evaluator
    from distributed.learner import Learner
    from distributed.replay.writer import ShardWriter

    cfg, ts = loop.cfg, loop.task_set
    use_cpu_share(cfg.torch_threads)
    masks = ts.action_masks().astype(np.float32)
    cache = cfg.shard_cache_mb << 20
    offline = (
        StoreSource(cfg.offline_data, masks, ts.max_obs_dim, balance=cfg.balance, cache_bytes=cache)
        if cfg.offline_data
        else None
    )
    collector, source = NoCollector(), offline
    if not cfg.offline:
        shard = loop.run_dir / "replay" / f"shard-{usable_shards(loop, 1)[0]:03d}"
        writer = ShardWriter(
            shard,
            obs_dim=ts.max_obs_dim,
            action_dim=ts.max_action_dim,
            chunk_len=cfg.chunk_len,
            task_names=list(ts.names),
        )
        online = StoreSource(
            shard,
            masks,
            ts.max_obs_dim,
            balance=cfg.balance,
            cache_bytes=cache,
            record_damage={shard: writer.quarantine},
        )  # damage found while sampling is kept
        source = online if offline is None else Mixture(online, offline, cfg.offline_ratio)
        refresh = source.refresh
    learner = Learner(loop.agent_cfg, masks, source, batch_size=cfg.batch_size, seed=cfg.seed, agent=loop.agent)
    policy = learner.built_agent().policy()  # shares the learner's model and its precision decision
    if not cfg.offline:
        runner = EnvRunner(
            policy,
            ts,
            loop.tasks,
            envs_per_task=cfg.envs_per_task,
            seed=resumed_seed(cfg.seed, writer.next_episode_id),
            max_episode_steps=cfg.max_episode_steps,
        )
        collector = LocalCollector(runner, writer, refresh, cfg.planner.horizon if cfg.partial_episodes else None)
    # the runner and evaluator plan with the learner's own model: every update is published as it happens
    return Parts(
        collector=collector,
        learners=Learners([learner], remote=False),
        evaluator=Evaluators([Evaluator(policy, ts)], remote=False),
        publish_every=1,
        close=collector.close,
        agent=learner.agent,
    )
