"""ReplayShardActor: one shard's writer plus a reader that serves batches, as a Ray actor.

The class is plain Python (tests and single-process runs use it directly); `remote_class()`
wraps it with `ray.remote` on first use, so importing this module never imports Ray.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from distributed.replay.reader import ShardReader
from distributed.replay.sampler import assemble_batch
from distributed.replay.writer import ShardWriter, episode_rows

EPISODE_KEYS = ("obs", "action", "reward", "terminated", "truncated", "task")


class ReplayShardActor:
    """Owns the shard at `path`: appends episodes, flushes at least every `flush_every_s`
    seconds (and on flush()/close()), and samples what is committed."""

    def __init__(self, path: str | Path, *, obs_dim: int, action_dim: int, chunk_len: int | None = None,
                 capacity: int | None = None, cache_bytes: int = 256 << 20, flush_every_s: float = 30.0,
                 seed: int | None = None, durable: bool = True):
        self.writer = ShardWriter(path, obs_dim=obs_dim, action_dim=action_dim, chunk_len=chunk_len,
                                  capacity=capacity, durable=durable)
        self.reader = ShardReader(path, cache_bytes=cache_bytes)
        self.rng = np.random.default_rng(seed)
        self.flush_every_s = flush_every_s
        self._last_flush = time.monotonic()

    def add_episodes(self, episodes: list[dict]) -> list[int]:
        """Append episodes (dicts with EPISODE_KEYS; extra keys ignored); returns their ids.

        All episodes are checked before any is added, so a bad one rejects the whole call.
        """
        for i, e in enumerate(episodes):
            missing = [k for k in EPISODE_KEYS if k not in e]
            if missing:
                raise ValueError(f"episode {i} is missing keys {missing}")
            try:
                episode_rows(*(e[k] for k in EPISODE_KEYS), obs_dim=self.writer.info.obs_dim,
                             action_dim=self.writer.info.action_dim)
            except ValueError as err:
                raise ValueError(f"episode {i}: {err}") from None
        ids = [self.writer.add_episode(*(e[k] for k in EPISODE_KEYS)) for e in episodes]
        if time.monotonic() - self._last_flush > self.flush_every_s:
            self.flush()
        else:
            self.reader.refresh()
        return ids

    def flush(self) -> None:
        """Commit everything added so far and make it sampleable."""
        self.writer.flush()
        self._last_flush = time.monotonic()
        self.reader.refresh()

    def sample(self, batch_size: int, horizon: int, balance: str = "uniform", action_masks=None,
               seed: int | None = None) -> dict[str, np.ndarray]:
        """ShardReader.sample with the actor's generator (or a fresh one from `seed`)."""
        rng = self.rng if seed is None else np.random.default_rng(seed)
        return self.reader.sample(batch_size, horizon, rng, balance=balance, action_masks=action_masks)

    def task_windows(self, horizon: int) -> dict[int, int]:
        """task id -> committed windows of horizon+1 rows (what a batch source plans its draws from)."""
        return self.reader.task_windows(horizon)

    def sample_plan(self, plan: dict, horizon: int, action_masks=None, seed: int | None = None) -> dict:
        """The windows `plan` asks for ({"n": k} or {"per_task": {t: k}}, see replay.sampler.plan_draws)
        as a batch (agents.batch.BATCH_KEYS)."""
        rng = self.rng if seed is None else np.random.default_rng(seed)
        rows, task = self.reader.draw(horizon, rng, **plan)
        return assemble_batch(self.reader.gather(rows), task, action_masks, self.writer.info.action_dim)

    def stats(self) -> dict:
        """Committed counts plus what is still pending in the writer."""
        c = self.writer.commit
        return {"path": str(self.writer.path), "transitions": c.live_transitions, "episodes": c.live_episodes,
                "task_counts": {t: v[1] for t, v in c.live_per_task.items() if v[0]},
                "pending_rows": self.writer.pending_rows, "next_episode_id": self.writer.next_episode_id,
                "commits": c.generation}

    def close(self) -> None:
        """Flush and release the shard's writer lock."""
        self.writer.close()


_remote = None


def remote_class():
    """ReplayShardActor as a Ray actor class (`remote_class().options(...).remote(path, ...)`)."""
    global _remote
    if _remote is None:
        import ray  # only when someone asks for the actor

        _remote = ray.remote(ReplayShardActor)
    return _remote
