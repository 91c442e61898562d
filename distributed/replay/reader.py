"""ShardReader: samples windows from one shard's committed data through a bounded RAM cache.

Any number of readers (in any process) may read a shard while its writer appends; a reader
sees exactly the state of the last commit record it read (`refresh()` reads the newest).
RAM: the live episode index (a few ints per episode) plus at most `cache_bytes` of decoded
chunks (plus one chunk in flight); never proportional to the number of rows.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import zarr

from distributed.replay.errors import ChunkError, ChunkEvicted
from distributed.replay.layout import (EPISODE_ARRAYS, EPISODE_GROUP, SAMPLED_ARRAYS, TASK_GROUP,
                                       chunk_file, read_state)
from distributed.replay.sampler import assemble_batch, draw_uniform, plan_draws, window_counts


class ShardReader:
    """Read-only view of one shard. `cache_bytes` bounds the decoded-chunk cache."""

    def __init__(self, path: str | Path, cache_bytes: int = 256 << 20):
        self.path = Path(path)
        self.cache_bytes = int(cache_bytes)
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cached_bytes = 0
        self._commit = None
        self._episodes = {k: np.zeros(0, dt) for k, dt in EPISODE_ARRAYS.items()}  # live ordinals
        self._task_ordinals: dict[int, np.ndarray] = {}  # live ordinals per task, from tasks/<t>
        self._windows: dict[int, tuple] = {}
        self.info, _ = read_state(self.path)
        self.refresh()

    # ---- index ---------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Pick up the newest commit; returns whether anything changed. Reads only new index entries."""
        _, commit = read_state(self.path)
        old = self._commit
        if old is not None and commit.generation == old.generation:
            return False
        group = zarr.open_group(str(self.path), mode="r")
        self._arrays = {k: group[k] for k in SAMPLED_ARRAYS}
        base = commit.first_episode
        held_base, held_end = (self._base, old.episodes) if old else (base, base)
        lo = max(held_end, base)
        new = {k: group[EPISODE_GROUP][k][lo:commit.episodes] for k in EPISODE_ARRAYS}
        drop = min(max(base - held_base, 0), held_end - held_base)  # held entries now evicted
        self._episodes = {k: np.concatenate([v[drop:], new[k]]) for k, v in self._episodes.items()}
        for t, n in commit.task_index.items():
            have = old.task_index.get(t, 0) if old else 0
            fresh = group[TASK_GROUP][str(t)][have:n] if n > have else np.zeros(0, np.int64)
            merged = np.concatenate([self._task_ordinals.get(t, np.zeros(0, np.int64)), fresh])
            self._task_ordinals[t] = merged[merged >= base]
        self._base = base
        self._commit = commit
        self._windows.clear()
        first_chunk = commit.first_row // self.info.chunk_len
        for k in [k for k in self._cache if k < first_chunk]:
            self._drop(k)
        return True

    @property
    def num_transitions(self) -> int:
        """Transitions (agent steps) in live episodes: an episode of T+1 rows has T."""
        return self._commit.live_transitions

    @property
    def num_episodes(self) -> int:
        return self._commit.live_episodes

    def task_counts(self) -> dict[int, int]:
        """task id -> live transitions."""
        return {t: v[1] for t, v in sorted(self._commit.live_per_task.items()) if v[0]}

    @property
    def cached_bytes(self) -> int:
        """Bytes of decoded chunks held in RAM now (at most cache_bytes + chunk_bytes)."""
        return self._cached_bytes

    @property
    def chunk_bytes(self) -> int:
        """Bytes of one decoded chunk of the sampled arrays."""
        per_row = 4 * (self.info.obs_dim + self.info.action_dim + 1) + 1
        return per_row * self.info.chunk_len

    def _window_index(self, horizon: int):
        if horizon not in self._windows:
            counts = window_counts(self._episodes["length"], horizon)
            per_task = {}
            for t, ords in self._task_ordinals.items():
                pos = ords - self._base
                c = counts[pos]
                if c.sum() > 0:
                    per_task[t] = (pos, c)
            self._windows[horizon] = (counts, per_task)
        return self._windows[horizon]

    def window_total(self, horizon: int) -> int:
        """How many distinct (H+1)-row windows the live episodes hold."""
        return int(self._window_index(horizon)[0].sum())

    def task_windows(self, horizon: int) -> dict[int, int]:
        """task id -> number of distinct windows, for tasks that have any."""
        return {t: int(c.sum()) for t, (_, c) in self._window_index(horizon)[1].items()}

    # ---- sampling ------------------------------------------------------------------------
    def draw(self, horizon: int, rng: np.random.Generator, *, n: int = 0,
             per_task: dict[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pick windows: n uniform over all windows, or per_task[t] uniform within task t.

        Returns (rows [n, H+1] int64 global row numbers, task [n] int64); order is shuffled.
        """
        counts, tasks = self._window_index(horizon)
        if per_task is None:
            if n and counts.sum() == 0:
                raise ValueError(f"shard {self.path}: no episode has more than {horizon} rows")
            ep, offset = draw_uniform(counts, n, rng)
        else:
            missing = [t for t in per_task if t not in tasks]
            if missing:
                raise ValueError(f"shard {self.path} has no window of horizon {horizon} for tasks {missing}")
            picks = [draw_uniform(tasks[t][1], c, rng) + (tasks[t][0],) for t, c in per_task.items()]
            ep = np.concatenate([pos[i] for i, _, pos in picks]).astype(np.int64)
            offset = np.concatenate([o for _, o, _ in picks])
            order = rng.permutation(len(ep))
            ep, offset = ep[order], offset[order]
        start = self._episodes["start"][ep] + offset
        rows = start[:, None] + np.arange(horizon + 1)
        return rows, self._episodes["task"][ep].astype(np.int64)

    def gather(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Read rows [n, H+1] -> {obs [n, H+1, O], action [n, H+1, A], reward, terminated [n, H+1]}."""
        C = self.info.chunk_len
        flat = rows.ravel()
        chunk = flat // C
        order = np.argsort(chunk, kind="stable")
        uniq, first = np.unique(chunk[order], return_index=True)
        bounds = np.append(first, len(order))
        out = {k: np.empty((len(flat), *a.shape[1:]), a.dtype) for k, a in self._arrays.items()}
        for i, k in enumerate(uniq):
            idx = order[bounds[i]:bounds[i + 1]]
            data = self._chunk(int(k))
            local = flat[idx] - int(k) * C
            for name in out:
                out[name][idx] = data[name][local]
        return {k: v.reshape(*rows.shape, *v.shape[1:]) for k, v in out.items()}

    def sample(self, batch_size: int, horizon: int, rng: np.random.Generator, balance: str = "uniform",
               action_masks=None) -> dict[str, np.ndarray]:
        """A training batch (agents.batch.BATCH_KEYS) of `batch_size` windows of horizon+1 rows.

        balance: "uniform", "task" or "sqrt", as `distributed.replay.sampler.plan_draws` defines
        them (the one meaning used everywhere). action_masks [num_tasks, A] gives action_mask [B, A].
        Raises ChunkError (naming shard and chunk) if a needed chunk is missing or corrupted.
        """
        for attempt in range(3):
            try:
                if balance == "uniform":  # straight over windows (no per-task index needed)
                    rows, task = self.draw(horizon, rng, n=batch_size)
                else:
                    plan = plan_draws([self.task_windows(horizon)], batch_size, balance, rng)[0]
                    rows, task = self.draw(horizon, rng, **plan)
                return assemble_batch(self.gather(rows), task, action_masks, self.info.action_dim)
            except ChunkEvicted:
                if attempt == 2:
                    raise
                self.refresh()

    # ---- chunk cache ---------------------------------------------------------------------
    def _chunk(self, k: int) -> dict[str, np.ndarray]:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        data = self._load_chunk(k)
        self._cache[k] = data
        self._cached_bytes += sum(v.nbytes for v in data.values())
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            self._drop(next(iter(self._cache)))
        return data

    def _drop(self, k: int) -> None:
        self._cached_bytes -= sum(v.nbytes for v in self._cache.pop(k).values())

    def _load_chunk(self, k: int) -> dict[str, np.ndarray]:
        C = self.info.chunk_len
        lo, hi = k * C, min((k + 1) * C, self._commit.rows)
        data = {}
        for name, arr in self._arrays.items():
            if not chunk_file(self.path, name, k, arr.ndim).exists():
                _, now = read_state(self.path)
                if lo < now.first_row:
                    raise ChunkEvicted(f"shard {self.path}: chunk {k} was evicted")
                raise ChunkError(self.path, name, k, "missing")
            try:
                data[name] = arr[lo:hi]
            except Exception as e:  # codec or checksum failure: name the chunk, keep the cause
                raise ChunkError(self.path, name, k, f"corrupted ({type(e).__name__}: {e})") from e
        return data
