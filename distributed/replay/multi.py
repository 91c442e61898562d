"""MultiShardSampler: one batch stream drawn from many shards, optionally prefetched in a thread.

Uniform: every window of every shard equally likely (so shards contribute in proportion to
their size). Task-balanced: each task (over all shards) equally likely, then uniform over that
task's windows wherever they live. A chunk that turns out missing or corrupted costs the episodes
with rows in it (`quarantine`; kept in the shard's commit record where this process owns its
writer, see `record_damage`), and the batch is drawn again; a shard that cannot be opened at all is
set aside whole (`failed`: path -> one line saying why) and the others serve.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import numpy as np

from distributed.replay.errors import ChunkError, ChunkEvicted, ReplayError
from distributed.replay.layout import unreadable
from distributed.replay.reader import ShardReader
from distributed.replay.sampler import assemble_batch, plan_draws
from distributed.storage import storage_path

log = logging.getLogger(__name__)


class MultiShardSampler:
    """Samples across the shards at `paths`; `cache_bytes` is the total cache, split evenly."""

    def __init__(self, paths, *, cache_bytes: int = 1 << 30, record_damage: dict | None = None):
        """`record_damage`: shard path -> its writer's `quarantine`, for the shards this process writes."""
        paths = [storage_path(p) for p in paths]
        if not paths:
            raise ValueError("MultiShardSampler needs at least one shard path")
        record_damage = {str(storage_path(k)): v for k, v in (record_damage or {}).items()}
        self.failed: dict[str, str] = {}
        self.readers = []
        for p in paths:
            why = unreadable(p)
            if why is not None:  # this shard only, named
                self.failed[str(p)] = why
                log.info("replay shard %s set aside whole: %s", p, why)
                continue
            self.readers.append(
                ShardReader(p, cache_bytes=cache_bytes // len(paths), record_damage=record_damage.get(str(p)))
            )
        if not self.readers:
            raise ReplayError(f"no replay shard could be opened: {self.failed}")
        dims = {(r.info.obs_dim, r.info.action_dim) for r in self.readers}
        if len(dims) > 1:
            raise ValueError(f"shards disagree on (obs_dim, action_dim): {sorted(dims)}")
        self.action_dim = self.readers[0].info.action_dim
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()

    @property
    def healthy(self) -> list[ShardReader]:
        return [r for r in self.readers if str(r.path) not in self.failed]

    @property
    def quarantine(self) -> list:
        """Damaged chunks of every shard (layout.Quarantine), each with the episodes it cost."""
        return [q for r in self.readers for q in r.quarantine]

    def refresh(self) -> None:
        """Pick up newly committed data in every healthy shard."""
        with self._lock:
            for r in self.healthy:
                r.refresh()

    @property
    def num_transitions(self) -> int:
        return sum(r.num_transitions for r in self.healthy)

    def task_counts(self) -> dict[int, int]:
        """task id -> live transitions over all healthy shards."""
        total: dict[int, int] = {}
        for r in self.healthy:
            for t, n in r.task_counts().items():
                total[t] = total.get(t, 0) + n
        return dict(sorted(total.items()))

    def sample(
        self, batch_size: int, horizon: int, rng: np.random.Generator, balance: str = "uniform", action_masks=None
    ) -> dict[str, np.ndarray]:
        """Like ShardReader.sample, over all healthy shards (see the module docstring)."""
        with self._lock:
            while True:
                readers = self.healthy
                if not readers:
                    raise ReplayError(f"no healthy shard left; failures: {list(self.failed.values())}")
                try:
                    return self._sample(readers, batch_size, horizon, rng, balance, action_masks)
                except ChunkError as e:
                    try:
                        next(r for r in readers if str(r.path) == e.shard).absorb(e)
                    except ChunkError:
                        self.failed[e.shard] = f"chunk {e.chunk} of '{e.array}' fails again after being set aside"
                        log.info("replay shard %s set aside whole: %s", e.shard, self.failed[e.shard])
                except ChunkEvicted:
                    for r in readers:
                        r.refresh()

    def _sample(self, readers, batch_size, horizon, rng, balance, action_masks):
        plan = plan_draws([r.task_windows(horizon) for r in readers], batch_size, balance, rng)
        parts, tasks_out = [], []
        for r, p in zip(readers, plan, strict=False):
            if p.get("n") or p.get("per_task"):
                rows, task = r.draw(horizon, rng, **p)
                parts.append(r.gather(rows))
                tasks_out.append(task)
        order = rng.permutation(batch_size)
        merged = {k: np.concatenate([p[k] for p in parts])[order] for k in parts[0]}
        return assemble_batch(merged, np.concatenate(tasks_out)[order], action_masks, self.action_dim)

    # ---- background prefetch -------------------------------------------------------------
    def start_prefetch(
        self,
        batch_size: int,
        horizon: int,
        *,
        balance: str = "uniform",
        action_masks=None,
        seed: int | None = None,
        depth: int = 4,
        refresh_every_s: float = 5.0,
    ) -> None:
        """Start a thread that keeps up to `depth` batches ready for next_batch()."""
        if self._thread is not None:
            raise RuntimeError("prefetch already running; call stop() first")
        rng = np.random.default_rng(seed)
        self._queue = batches = queue.Queue(maxsize=depth)
        self._stop.clear()

        def put(item) -> None:
            while not self._stop.is_set():  # never block stop() on a full queue
                try:
                    batches.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        def run():
            last_refresh = time.monotonic()
            try:
                while not self._stop.is_set():
                    if time.monotonic() - last_refresh > refresh_every_s:
                        self.refresh()
                        last_refresh = time.monotonic()
                    put(self.sample(batch_size, horizon, rng, balance, action_masks))
            except Exception as e:  # handed to the consumer by next_batch()
                put(e)

        self._thread = threading.Thread(target=run, name="replay-prefetch", daemon=True)
        self._thread.start()

    def next_batch(self, timeout: float | None = None) -> dict[str, np.ndarray]:
        """The next prefetched batch; re-raises an error the prefetch thread hit."""
        if self._queue is None:
            raise RuntimeError("call start_prefetch() first")
        item = self._queue.get(timeout=timeout)
        if isinstance(item, Exception):
            raise item
        return item

    def stop(self) -> None:
        """Stop the prefetch thread (if any)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread, self._queue = None, None

    def __enter__(self) -> MultiShardSampler:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
