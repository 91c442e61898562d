"""ShardReader: samples windows from one shard's committed data through a bounded RAM cache.

Any number of readers (in any process) may read a shard while its writer appends; a reader
sees exactly the state of the last commit record it read (`refresh()` reads the newest).
RAM: the live episode index (a few ints per episode) plus at most `cache_bytes` of decoded
chunks (plus LOAD_AT_ONCE chunks in flight); never proportional to the number of rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from distributed.replay.errors import ChunkError, ChunkEvicted, NoWindowsError
from distributed.replay.layout import (
    EPISODE_ARRAYS,
    EPISODE_GROUP,
    SAMPLED_ARRAYS,
    TASK_GROUP,
    Commit,
    Quarantine,
    episodes_in_chunk,
    open_state,
    read_state,
)
from distributed.replay.sampler import assemble_batch, draw_uniform, plan_draws, window_counts
from distributed.storage import storage_path

if TYPE_CHECKING:
    from distributed.storage import Location

log = logging.getLogger(__name__)
LOAD_AT_ONCE = 16  # chunks a batch fetches at once when they are not cached (RAM: cache_bytes + this many chunks)


def _open_and_read(group, reads: dict[str, tuple[int, tuple[int, int] | None]], held: dict) -> dict[str, tuple]:
    """{array path in `group`: (extent needed, (lo, hi) to read or None)} -> {path: (zarr.Array, its rows
    [lo, hi) or None)}: an array in `held` whose shape already covers the extent is used as it is (on an
    object store arrays grow ahead of the commits), the others are opened again; all opened and read at
    once on Zarr's event loop (on an object store each is a round trip; one after another they were most
    of a refresh)."""
    import zarr
    from zarr.core.sync import sync

    async def one(name, need, span):
        a = held.get(name)
        a = a.async_array if a is not None and a.shape[0] >= need else await group._async_group.getitem(name)
        return zarr.Array(a), (None if span is None else await a.getitem(slice(*span)))

    async def all_of():
        return await asyncio.gather(*(one(name, need, span) for name, (need, span) in reads.items()))

    return dict(zip(reads, sync(all_of()), strict=False))


class ShardReader:
    """Read-only view of one shard. `cache_bytes` bounds the decoded-chunk cache."""

    def __init__(self, path: Location, cache_bytes: int = 256 << 20, record_damage=None):
        """`record_damage(array, chunk, reason)`: the shard's writer's `quarantine`, where this reader's
        process owns it, so damage found while sampling is kept in the commit record (None: read-only,
        kept in this reader)."""
        self.path = storage_path(path)  # a directory, or an object-store URI
        self.record_damage = record_damage
        self.cache_bytes = int(cache_bytes)
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cached_bytes = 0
        self._handles: dict = {}  # array path -> zarr.Array opened by the last refresh
        self._commit: Commit | None = None  # set by refresh() below, before any other method runs
        self._episodes = {k: np.zeros(0, dt) for k, dt in EPISODE_ARRAYS.items()}  # live ordinals
        self._task_ordinals: dict[int, np.ndarray] = {}  # live ordinals per task, from tasks/<t>
        self._windows: dict[int, tuple] = {}
        self._local: dict[int, Quarantine] = {}  # chunk -> damage found here, not (yet) in the commit record
        self._aside = np.zeros(0, np.int64)  # ids of the episodes left out (record's and local)
        self.info, _ = read_state(self.path)
        self.refresh()

    # ---- index ---------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Pick up the newest commit; returns whether anything changed. Reads only new index entries."""
        _, commit, group = open_state(self.path)
        old = self._commit
        if old is not None and commit.generation == old.generation:
            return False
        base = commit.first_episode
        held_base, held_end = (self._base, old.episodes) if old else (base, base)
        lo = max(held_end, base)
        reads: dict[str, tuple[int, tuple[int, int] | None]] = {
            k: (commit.rows, None) for k in SAMPLED_ARRAYS
        }  # opened (shapes to cover rows), nothing read
        reads.update({f"{EPISODE_GROUP}/{k}": (commit.episodes, (lo, commit.episodes)) for k in EPISODE_ARRAYS})
        for t, n in commit.task_index.items():
            have = old.task_index.get(t, 0) if old else 0
            if n > have:
                reads[f"{TASK_GROUP}/{t}"] = (n, (have, n))
        got = _open_and_read(group, reads, self._handles)
        self._handles = {k: a for k, (a, _) in got.items()}
        self._arrays = {k: got[k][0] for k in SAMPLED_ARRAYS}
        new = {k: got[f"{EPISODE_GROUP}/{k}"][1] for k in EPISODE_ARRAYS}
        drop = min(max(base - held_base, 0), held_end - held_base)  # held entries now evicted
        self._episodes = {k: np.concatenate([v[drop:], new[k]]) for k, v in self._episodes.items()}
        for t in commit.task_index:
            fresh = got.get(f"{TASK_GROUP}/{t}", (None, np.zeros(0, np.int64)))[1]
            merged = np.concatenate([self._task_ordinals.get(t, np.zeros(0, np.int64)), fresh])
            self._task_ordinals[t] = merged[merged >= base]
        self._base = base
        self._commit = commit
        self._took_commit()
        return True

    def adopt(self, commit, index: dict[str, np.ndarray], arrays: dict) -> bool:
        """Take the state that the shard's writer in this process has just committed instead of reading it
        back from the store (a shard actor: its writer is the shard's only one, so this is what `refresh()`
        would read; on an object store that is a round trip and a GET per index array saved per commit).
        `index`: the writer's live episode index (ordinals from commit.first_episode on), `arrays`: its
        open row arrays. Returns whether anything changed."""
        if self._commit is not None and commit.generation == self._commit.generation:
            return False
        self._arrays = {k: arrays[k] for k in SAMPLED_ARRAYS}
        self._episodes = {k: np.array(index[k], dtype=dt) for k, dt in EPISODE_ARRAYS.items()}
        self._base = commit.first_episode
        self._task_ordinals = {t: self._base + np.flatnonzero(self._episodes["task"] == t) for t in commit.task_index}
        self._commit = commit
        self._took_commit()
        return True

    @property
    def _record(self) -> Commit:
        """The commit record this reader holds (the constructor's refresh() reads the first one)."""
        if self._commit is None:
            raise RuntimeError(f"ShardReader for {self.path} holds no commit record yet")
        return self._commit

    def _took_commit(self) -> None:
        """What follows a new commit record, read or adopted: damage it records, evicted chunks leave the cache."""
        commit = self._record
        self._local = {k: q for k, q in self._local.items() if k not in {r["chunk"] for r in commit.quarantine}}
        self._set_aside_ids()
        first_chunk = commit.first_row // self.info.chunk_len
        for k in [k for k in self._cache if k < first_chunk]:
            self._drop(k)

    @property
    def generation(self) -> int:
        """The generation of the commit record this reader holds."""
        return self._record.generation

    def _set_aside_ids(self) -> None:
        ids = self._record.quarantined_ids() | {e for q in self._local.values() for e in q.episodes}
        self._aside = np.fromiter(ids, np.int64, len(ids))
        self._windows.clear()

    @property
    def quarantine(self) -> list[Quarantine]:
        """Damaged chunks and the episodes left out with them: the commit record's, then those found
        by this reader that no writer has recorded (a read-only store)."""
        return [Quarantine.from_record(self.path, q) for q in self._record.quarantine] + list(self._local.values())

    def set_aside(self, err: ChunkError) -> Quarantine:
        """Leave out, in this reader, the live episodes with rows in the chunk `err` names (and drop the
        chunk from the cache); the rest stays sampleable. Returns what was set aside. A shard's writer
        records it for every reader with `ShardWriter.quarantine` (then `refresh()`)."""
        for q in self.quarantine:
            if q.chunk == err.chunk:
                return q
        hit = episodes_in_chunk(self._episodes["start"], self._episodes["length"], err.chunk, self.info.chunk_len)
        hit = hit[~np.isin(self._episodes["id"][hit], self._aside)]
        q = Quarantine(
            str(self.path),
            err.array,
            err.chunk,
            " ".join(err.reason.split())[:300],
            tuple(int(e) for e in self._episodes["id"][hit]),
            int((self._episodes["length"][hit] - 1).sum()),
        )
        self._local[err.chunk] = q
        if err.chunk in self._cache:
            self._drop(err.chunk)
        self._set_aside_ids()
        return q

    def _local_loss(self) -> tuple[int, int, dict[int, int]]:
        """(episodes, transitions, task -> transitions) set aside here but not in the commit record."""
        ids = [e for q in self._local.values() for e in q.episodes]
        pos = np.flatnonzero(np.isin(self._episodes["id"], ids))
        steps = self._episodes["length"][pos] - 1
        per_task: dict[int, int] = {}
        for t, n in zip(self._episodes["task"][pos].tolist(), steps.tolist(), strict=False):
            per_task[t] = per_task.get(t, 0) + n
        return len(pos), int(steps.sum()), per_task

    @property
    def num_transitions(self) -> int:
        """Transitions (agent steps) in live episodes that are not set aside: an episode of T+1 rows has T."""
        return self._record.live_transitions - (self._local_loss()[1] if self._local else 0)

    @property
    def num_episodes(self) -> int:
        return self._record.live_episodes - (self._local_loss()[0] if self._local else 0)

    def task_counts(self) -> dict[int, int]:
        """task id -> live transitions (not set aside)."""
        lost = self._local_loss()[2] if self._local else {}
        counts = {t: v[1] - lost.get(t, 0) for t, v in sorted(self._record.live_per_task.items()) if v[0]}
        return {t: n for t, n in counts.items() if n > 0}

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
            if len(self._aside):  # episodes in a damaged chunk have no window
                counts[np.isin(self._episodes["id"], self._aside)] = 0
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
    def draw(
        self, horizon: int, rng: np.random.Generator, *, n: int = 0, per_task: dict[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pick windows: n uniform over all windows, or per_task[t] uniform within task t.

        Returns (rows [n, H+1] int64 global row numbers, task [n] int64); order is shuffled.
        """
        counts, tasks = self._window_index(horizon)
        if per_task is None:
            if n and counts.sum() == 0:
                raise NoWindowsError(f"shard {self.path}: no episode has more than {horizon} rows")
            ep, offset = draw_uniform(counts, n, rng)
        else:
            missing = [t for t in per_task if t not in tasks]
            if missing:
                raise NoWindowsError(f"shard {self.path} has no window of horizon {horizon} for tasks {missing}")
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
        for g in range(0, len(uniq), LOAD_AT_ONCE):  # the chunks not in the cache fetched LOAD_AT_ONCE at a time
            group = [int(k) for k in uniq[g : g + LOAD_AT_ONCE]]
            fresh = self._load_chunks([k for k in group if k not in self._cache])
            for i, k in enumerate(group, start=g):
                idx = order[bounds[i] : bounds[i + 1]]
                data = self._keep(k, fresh[k]) if k in fresh else self._chunk(k)
                local = flat[idx] - k * C
                for name in out:
                    out[name][idx] = data[name][local]
        return {k: v.reshape(*rows.shape, *v.shape[1:]) for k, v in out.items()}

    def sample(
        self, batch_size: int, horizon: int, rng: np.random.Generator, balance: str = "uniform", action_masks=None
    ) -> dict[str, np.ndarray]:
        """A training batch (agents.batch.BATCH_KEYS) of `batch_size` windows of horizon+1 rows.

        balance: "uniform", "task" or "sqrt", as `distributed.replay.sampler.plan_draws` defines
        them (the one meaning used everywhere). action_masks [num_tasks, A] gives action_mask [B, A].
        Raises ChunkError (naming shard and chunk) if a needed chunk is missing or corrupted.
        """

        def one():
            if balance == "uniform":  # straight over windows (no per-task index needed)
                rows, task = self.draw(horizon, rng, n=batch_size)
            else:
                plan = plan_draws([self.task_windows(horizon)], batch_size, balance, rng)[0]
                rows, task = self.draw(horizon, rng, **plan)
            return assemble_batch(self.gather(rows), task, action_masks, self.info.action_dim)

        return self.retrying(one)

    def sample_plan(self, plan: dict, horizon: int, rng: np.random.Generator, action_masks=None) -> dict:
        """The windows `plan` asks for ({"n": k} or {"per_task": {t: k}}, replay.sampler.plan_draws) as a batch.
        A task of the plan whose windows were all set aside meanwhile (damage) is drawn from uniformly instead."""

        def one():
            p: dict[str, Any] = plan
            if "per_task" in p:
                have = self.task_windows(horizon)
                gone = sum(k for t, k in p["per_task"].items() if t not in have)
                if gone:
                    p = {"per_task": {t: k for t, k in p["per_task"].items() if t in have}}
                    rows, task = self.draw(horizon, rng, n=gone)
                    more = self.draw(horizon, rng, **p) if p["per_task"] else (rows[:0], task[:0])
                    rows, task = np.concatenate([rows, more[0]]), np.concatenate([task, more[1]])
                    return assemble_batch(self.gather(rows), task, action_masks, self.info.action_dim)
            rows, task = self.draw(horizon, rng, **p)
            return assemble_batch(self.gather(rows), task, action_masks, self.info.action_dim)

        return self.retrying(one)

    def retrying(self, draw_and_gather):
        """`draw_and_gather()` again after a raced eviction (refresh) or a damaged chunk (its episodes set
        aside, and recorded by `record_damage` if given); each damaged chunk costs one retry."""
        evictions = 0
        while True:
            try:
                return draw_and_gather()
            except ChunkEvicted:
                evictions += 1
                if evictions == 3:
                    raise
                self.refresh()
            except ChunkError as err:
                self.absorb(err)

    def absorb(self, err: ChunkError) -> Quarantine:
        """Set aside what `err` (a damaged chunk this reader hit) costs, recorded by `record_damage` if
        given; re-raises `err` if that chunk was set aside already (a chunk this reader cannot avoid)."""
        if any(q.chunk == err.chunk for q in self.quarantine):
            raise err
        q = self.set_aside(err)
        log.info("%s", q.line())  # the job prints it once, where it reports to the user
        if self.record_damage is not None:
            self.record_damage(err.array, err.chunk, err.reason)
            self.refresh()
        return q

    # ---- chunk cache ---------------------------------------------------------------------
    def _chunk(self, k: int) -> dict[str, np.ndarray]:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        return self._keep(k, self._load_chunks([k])[k])

    def _keep(self, k: int, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Put chunk k in the cache (evicting the least recently used beyond cache_bytes); returns it."""
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        self._cache[k] = data
        self._cached_bytes += sum(v.nbytes for v in data.values())
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            self._drop(next(iter(self._cache)))
        return data

    def _drop(self, k: int) -> None:
        self._cached_bytes -= sum(v.nbytes for v in self._cache.pop(k).values())

    def _load_chunks(self, ks: list[int]) -> dict[int, dict[str, np.ndarray]]:
        """Chunks `ks` of every sampled array, each checked to exist (Zarr would read a missing chunk as fill)
        and decoded; all their requests at once (each a round trip on an object store). Raises ChunkError
        (or ChunkEvicted) for the first bad chunk of `ks`."""
        from zarr.core.sync import sync

        if not ks:
            return {}
        C = self.info.chunk_len

        async def one(k, arr):
            a = arr.async_array
            lo, hi = k * C, min((k + 1) * C, self._record.rows)
            key = a.metadata.encode_chunk_key((k,) + (0,) * (a.ndim - 1))
            return await asyncio.gather((a.store_path / key).exists(), a.getitem(slice(lo, hi)), return_exceptions=True)

        async def all_of():
            return await asyncio.gather(*(one(k, arr) for k in ks for arr in self._arrays.values()))

        got = iter(sync(all_of()))
        out = {}
        for k in ks:
            data = {}
            for name in self._arrays:
                there, value = next(got)
                if isinstance(there, BaseException):
                    raise there
                if not there:
                    _, now = read_state(self.path)
                    if k * C < now.first_row:
                        raise ChunkEvicted(f"shard {self.path}: chunk {k} was evicted")
                    raise ChunkError(self.path, name, k, "missing")
                if isinstance(value, BaseException):  # codec or checksum failure: name the chunk, keep the cause
                    raise ChunkError(self.path, name, k, f"corrupted ({type(value).__name__}: {value})") from value
                data[name] = value
            out[k] = data
        return out
