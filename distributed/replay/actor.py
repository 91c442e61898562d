"""ReplayShardActor: one shard's writer plus a reader that serves batches, as a Ray actor.

The class is plain Python (tests and single-process runs use it directly); `remote_class()`
wraps it with `ray.remote` on first use, so importing this module never imports Ray.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import numpy as np

from distributed.replay.layout import whole_episodes_per_task
from distributed.replay.reader import ShardReader
from distributed.replay.writer import ShardWriter, episode_rows

EPISODE_KEYS = ("obs", "action", "reward", "terminated", "truncated", "task")


class ReplayShardActor:
    """Owns the shard at `path`: appends episodes, commits what it was handed within
    `flush_every_s` seconds even if no further call comes (a timer thread; and on flush()/close()),
    and samples what is committed. Episodes that carry a `source` (producer, sequence) id are
    inserted once: a retried call (Ray retries a call to a restarted actor) skips the ones the
    shard already holds, also across a restart (the ids are in the commit record)."""

    def __init__(
        self,
        path: str | Path,
        *,
        obs_dim: int,
        action_dim: int,
        chunk_len: int | None = None,
        capacity: int | None = None,
        cache_bytes: int = 256 << 20,
        flush_every_s: float = 30.0,
        seed: int | None = None,
        durable: bool = True,
        task_names: list[str] | None = None,
    ):
        self.writer = ShardWriter(
            path,
            obs_dim=obs_dim,
            action_dim=action_dim,
            chunk_len=chunk_len,
            capacity=capacity,
            durable=durable,
            task_names=task_names,
        )
        self.reader = ShardReader(path, cache_bytes=cache_bytes, record_damage=self.writer.quarantine)
        self.rng = np.random.default_rng(seed)
        self.flush_every_s = flush_every_s
        self.incarnation = uuid.uuid4().hex  # a restarted actor has lost what it had not committed
        # the commit generation found at open: below what the driver saw committed, the store it reopened is
        # not the one it had (storage the new node cannot reach, e.g. a node-local disk)
        self.opened_generation = self.writer.commit.generation
        self._last_flush = time.monotonic()
        self._lock = threading.RLock()  # the timer thread and actor calls share writer and reader
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._flush_on_time, daemon=True, name="shard-flush")
        self._timer.start()

    def _flush_on_time(self) -> None:
        while not self._stop.wait(min(self.flush_every_s, 1.0) / 2):
            with self._lock:
                if self.writer.pending_rows and time.monotonic() - self._last_flush >= self.flush_every_s:
                    self.flush()

    def add_episodes(self, episodes: list[dict]) -> list[int]:
        """Append episodes (dicts with EPISODE_KEYS; extra keys ignored); returns their ids.

        All episodes are checked before any is added, so a bad one rejects the whole call.
        """
        for i, e in enumerate(episodes):
            missing = [k for k in EPISODE_KEYS if k not in e]
            if missing:
                raise ValueError(f"episode {i} is missing keys {missing}")
            try:
                episode_rows(
                    *(e[k] for k in EPISODE_KEYS),
                    obs_dim=self.writer.info.obs_dim,
                    action_dim=self.writer.info.action_dim,
                )
            except ValueError as err:
                raise ValueError(f"episode {i}: {err}") from None
        with self._lock:
            ids = []
            for e in episodes:
                source = tuple(e["source"]) if e.get("source") is not None else None
                if source is not None and self.writer.seen(source):
                    continue  # a retried call: this episode is stored already
                ids.append(
                    self.writer.add_episode(
                        *(e[k] for k in EPISODE_KEYS), source=source, version=int(e.get("weights_version", -1))
                    )
                )
            if time.monotonic() - self._last_flush > self.flush_every_s:
                self.flush()
            else:
                self._refresh()
            return ids

    def _refresh(self) -> None:
        """The reader picks up this writer's newest commit, from the writer (the shard's only one), not by
        reading it back from the store (on S3 a round trip of several GETs per commit)."""
        self.reader.adopt(*self.writer.committed_state())

    def flush(self) -> None:
        """Commit everything added so far and make it sampleable."""
        with self._lock:
            self.writer.flush()
            self._last_flush = time.monotonic()
            self._refresh()

    def committed(self, producer: str) -> tuple[str, int, list[int]]:
        """(this incarnation's id, the highest sequence number of `producer` that is committed, the
        numbers below it that are not): a producer resends what is not committed when the
        incarnation changes."""
        with self._lock:
            c = self.writer.commit
            return self.incarnation, c.sources.get(str(producer), -1), list(c.source_gaps.get(str(producer), ()))

    def state(self) -> dict:
        """What the driver checks a shard against (after a restart, its store must be the one it had):
        this incarnation, the commit generation found at open and now, where it runs, and its committed
        whole episodes per task (`layout.whole_episodes_per_task`), everything handed over committed first."""
        with self._lock:
            self.flush()
            return {
                "incarnation": self.incarnation,
                "opened_generation": self.opened_generation,
                "generation": self.writer.commit.generation,
                "path": str(self.writer.path),
                "node": _node_id(),
                "whole_per_task": whole_episodes_per_task(self.writer.path),
            }

    def sample(
        self, batch_size: int, horizon: int, balance: str = "uniform", action_masks=None, seed: int | None = None
    ) -> dict[str, np.ndarray]:
        """ShardReader.sample with the actor's generator (or a fresh one from `seed`)."""
        rng = self.rng if seed is None else np.random.default_rng(seed)
        with self._lock:
            return self.reader.sample(batch_size, horizon, rng, balance=balance, action_masks=action_masks)

    def task_windows(self, horizon: int) -> dict[int, int]:
        """task id -> committed windows of horizon+1 rows (what a batch source plans its draws from)."""
        with self._lock:
            return self.reader.task_windows(horizon)

    def sample_plan(self, plan: dict, horizon: int, action_masks=None, seed: int | None = None) -> dict:
        """The windows `plan` asks for ({"n": k} or {"per_task": {t: k}}, see replay.sampler.plan_draws)
        as a batch (agents.batch.BATCH_KEYS)."""
        rng = self.rng if seed is None else np.random.default_rng(seed)
        with self._lock:
            return self.reader.sample_plan(plan, horizon, rng, action_masks)

    def stats(self) -> dict:
        """Committed counts plus what is still pending in the writer."""
        c = self.writer.commit
        return {
            "path": str(self.writer.path),
            "transitions": c.live_transitions,
            "episodes": c.live_episodes,
            "task_counts": {t: v[1] for t, v in c.live_per_task.items() if v[0]},
            "pending_rows": self.writer.pending_rows,
            "next_episode_id": self.writer.next_episode_id,
            "commits": c.generation,
            "quarantine": [q.summary() for q in self.reader.quarantine],
        }

    def pid(self) -> int:
        """This process's id (fault-injection tests kill it with a real signal)."""
        import os

        return os.getpid()

    def close(self) -> None:
        """Flush and release the shard's writer lock."""
        self._stop.set()
        with self._lock:
            self.writer.close()


def _node_id() -> str | None:
    """The Ray node this actor runs on (None outside Ray)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except ImportError:
        return None


_remote = None


def remote_class():
    """ReplayShardActor as a Ray actor class (`remote_class().options(...).remote(path, ...)`)."""
    global _remote
    if _remote is None:
        import ray  # only when someone asks for the actor

        _remote = ray.remote(ReplayShardActor)
    return _remote
