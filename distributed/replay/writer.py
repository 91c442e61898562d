"""ShardWriter: the one process that appends episodes to a shard.

Commit protocol (why a reader never sees a partial write and a kill loses only the tail):
rows are buffered in RAM and written to Zarr in whole chunks, each chunk file written once
(Zarr's LocalStore writes a temp file and renames it); then the episode/task indexes are
appended; then, last, the commit record in the group's zarr.json is replaced. Readers read
only what the commit record covers. `flush()` also writes the partial last chunk (padded);
the next write starts at the next chunk boundary, so a committed chunk is never rewritten.
On an object store (an s3:// URI, through Zarr's FsspecStore) the same order holds without
rename or fsync: every object is one atomic PUT, chunk objects first, the record last, and the
single writer holds a lease instead of a flock (README.md, "On object storage").
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from typing import TYPE_CHECKING

import numpy as np
import zarr

from distributed.replay.errors import ShardLayoutError
from distributed.replay.faults import KillSwitch
from distributed.replay.layout import (
    ATTR_KEY,
    DEFAULT_CHUNK_LEN,
    EPISODE_ARRAYS,
    EPISODE_GROUP,
    EPISODE_VERSION,
    FORMAT,
    INDEX_CHUNK_LEN,
    ROW_ARRAYS,
    ROW_DTYPES,
    ROW_FILL,
    TASK_GROUP,
    WRITE_CONFIG,
    Commit,
    Quarantine,
    ShardInfo,
    chunk_file,
    compressors,
    episodes_in_chunk,
    fsync_paths,
    group_at,
    object_store_path,
    open_arrays,
    open_group,
    read_rows,
    read_state,
    row_tail,
    shard_attrs,
)
from distributed.replay.lock import WriterLease, WriterLock
from distributed.storage import is_remote, local_path, storage_path, zarr_store

if TYPE_CHECKING:
    from distributed.storage import Location, StoragePath


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


# On an object store the row arrays grow this many chunks at a time (the index arrays a chunk at a time),
# so a commit does not rewrite every array's zarr.json (a PUT each) for a new shape: their shapes run
# ahead of the committed extents, which only the commit record gives (README.md, "On object storage").
GROW_CHUNKS = 16


def _pad(a: np.ndarray, n: int, fill) -> np.ndarray:
    """`a` extended to n rows with `fill` (what Zarr stores beyond an array's extent in its last chunk)."""
    if len(a) >= n:
        return a
    return np.concatenate([a, np.full((n - len(a), *a.shape[1:]), fill, a.dtype)])


async def _grow_and_set(arr: zarr.Array, shape: tuple[int, ...], start: int, value: np.ndarray) -> None:
    """Resize `arr` to `shape` (its zarr.json) and write `value` at rows [start, start + len(value)):
    one array's share of a commit, awaited with the other arrays' (`_write_all`)."""
    a = arr.async_array
    if tuple(a.shape) != tuple(shape):
        await a.resize(shape)
    await a.setitem(slice(start, start + len(value)), value)


def _write_all(jobs: list[tuple[zarr.Array, tuple[int, ...], int, np.ndarray]]) -> None:
    """Do the writes of `jobs` (array, new shape, first row, values) at once, on Zarr's event loop:
    each object is still one whole PUT (or temp file + rename), but a commit waits for the slowest
    request instead of the sum of ~20 (on an object store each is a round trip). Returns when every
    one has been written; raises the first failure (the commit record is then not written)."""
    from zarr.core.sync import sync

    async def all_of():
        await asyncio.gather(*(_grow_and_set(*j) for j in jobs))

    if jobs:
        sync(all_of())


def episode_rows(
    obs, action, reward, terminated, truncated, task, *, obs_dim: int, action_dim: int
) -> dict[str, np.ndarray]:
    """Check one episode against the row convention and return its rows in store dtypes.

    obs [T+1, O], action [T+1, A], reward/terminated/truncated [T+1], T >= 1; row 0 has zero
    action and reward and no flags; flags only on the last row. Raises ValueError naming the
    offending array and its shape before anything is written.
    """
    arrays = {
        "obs": np.asarray(obs),
        "action": np.asarray(action),
        "reward": np.asarray(reward),
        "terminated": np.asarray(terminated),
        "truncated": np.asarray(truncated),
    }
    n = arrays["obs"].shape[0] if arrays["obs"].ndim == 2 else -1
    expected = {"obs": (n, obs_dim), "action": (n, action_dim), "reward": (n,), "terminated": (n,), "truncated": (n,)}
    if arrays["obs"].ndim != 2 or arrays["obs"].shape[1] != obs_dim or n < 2:
        raise ValueError(
            f"obs has shape {arrays['obs'].shape}; this shard takes obs of shape [T+1, {obs_dim}] with T >= 1"
        )
    for name, shape in expected.items():
        a = arrays[name]
        if a.shape != shape:
            raise ValueError(f"{name} has shape {a.shape}, expected {shape} (obs has shape {arrays['obs'].shape})")
        if name in ("terminated", "truncated"):
            if not (a.dtype == np.bool_ or (np.issubdtype(a.dtype, np.integer) and np.isin(a, (0, 1)).all())):
                raise ValueError(f"{name} has dtype {a.dtype}; expected bool (or integers 0/1)")
        elif not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{name} has dtype {a.dtype}; expected a floating-point array")
        elif not np.isfinite(a).all():
            raise ValueError(f"{name} (shape {a.shape}) contains NaN or inf")
    if isinstance(task, (bool, np.bool_)) or not isinstance(task, (int, np.integer)) or not 0 <= task < 2**31:
        raise ValueError(f"task must be an int in [0, 2**31), got {task!r}")
    rows = {k: arrays[k].astype(ROW_DTYPES[k], copy=False) for k in arrays}
    if rows["action"][0].any() or rows["reward"][0] != 0 or rows["terminated"][0] or rows["truncated"][0]:
        raise ValueError(
            "row 0 must hold the first observation with action 0, reward 0 and no "
            "terminated/truncated flag (row t holds obs_t and action/reward/flags of step t-1)"
        )
    if rows["terminated"][1:-1].any() or rows["truncated"][1:-1].any():
        raise ValueError("terminated/truncated may only be set on the last row of an episode")
    return rows


class ShardWriter:
    """Creates or reopens the shard at `path` and appends episodes to it.

    Reopening resumes: the committed content is kept exactly, uncommitted leftovers of a
    killed writer are removed, episode ids continue. A second live writer on the same shard
    gets WriterLockedError; different dims (or chunk_len) give ShardLayoutError and touch nothing.
    capacity: if set, the oldest whole chunks are evicted (durably) to keep at most that many rows.
    durable: fsync data before each commit record (for power loss; a killed process needs none).
    first_episode_id: where a new shard's ids start (e.g. shard_index << 40 for fleet-unique ids);
    only used when the shard is created.
    """

    def __init__(
        self,
        path: Location,
        *,
        obs_dim: int,
        action_dim: int,
        chunk_len: int | None = None,
        capacity: int | None = None,
        durable: bool = True,
        first_episode_id: int = 0,
        task_names: list[str] | tuple[str, ...] | None = None,
    ):
        self.path = storage_path(path)
        self.remote = is_remote(self.path)  # an object store: no rename, no fsync, no flock
        if not self.remote:
            self.path.mkdir(parents=True, exist_ok=True)
        self._lock = WriterLease(self.path) if self.remote else WriterLock(local_path(self.path))
        self._faults = KillSwitch()  # test-only: LATENTFLEET_KILL_AT (distributed/replay/faults.py)
        try:
            self.info = self._open_or_create(obs_dim, action_dim, chunk_len, first_episode_id, task_names)
            if capacity is not None and capacity < 2 * self.info.chunk_len:
                raise ValueError(f"capacity {capacity} must be at least 2 chunks ({2 * self.info.chunk_len} rows)")
            self.capacity, self.durable = capacity, durable
            self._recover()
        except BaseException:
            self._lock.release()
            raise
        self._buffer: list[dict[str, np.ndarray]] = []
        self._buffered = 0
        self._pending: list[tuple[int, int, int, int, int]] = []  # (id, start row, rows, task, version) uncommitted
        self._pending_sources: set[tuple[str, int]] = set()  # (producer, sequence) added, not yet committed
        self._source_of: dict[int, tuple[str, int]] = {}  # pending episode id -> (producer, sequence)
        self._closed = False

    # ---- opening -------------------------------------------------------------------------
    def _open_or_create(
        self, obs_dim: int, action_dim: int, chunk_len: int | None, first_episode_id: int, task_names
    ) -> ShardInfo:
        group_json = self.path / "zarr.json"
        if group_json.exists():
            attrs = shard_attrs(open_group(self.path, mode="r"))
            if attrs is None:
                raise ShardLayoutError(f"{self.path} is a Zarr group but not a replay shard; refusing to write there")
            if "commit" not in attrs:  # creation was interrupted before its first commit: nothing to lose
                self._remove_contents()
        else:
            strays = (
                [p.name for p in self.path.iterdir() if not p.name.endswith(".partial")] if self.path.exists() else []
            )
            if strays:
                raise ShardLayoutError(f"{self.path} is not empty and not a replay shard (holds {strays[:5]})")
        if not group_json.exists():
            self._create(obs_dim, action_dim, chunk_len or DEFAULT_CHUNK_LEN, first_episode_id, task_names)
        info, _ = read_state(self.path)
        if (info.obs_dim, info.action_dim) != (obs_dim, action_dim):
            raise ShardLayoutError(
                f"shard {self.path} holds obs_dim={info.obs_dim}, action_dim={info.action_dim}; "
                f"it was reopened with obs_dim={obs_dim}, action_dim={action_dim}"
            )
        if chunk_len is not None and chunk_len != info.chunk_len:
            raise ShardLayoutError(
                f"shard {self.path} has chunk_len={info.chunk_len}; reopened with chunk_len={chunk_len}"
            )
        if task_names is not None and info.tasks is not None and tuple(task_names) != info.tasks:
            diff = next(
                i
                for i, (a, b) in enumerate(zip(info.tasks + ("",) * len(task_names), task_names, strict=False))
                if a != b
            )
            raise ShardLayoutError(
                f"shard {self.path} stores tasks by id in another order or set (id {diff}: "
                f"{info.tasks[diff] if diff < len(info.tasks) else None!r} there, "
                f"{task_names[diff]!r} here)"
            )
        return info

    def _remove_contents(self) -> None:
        if self.remote:
            remote = object_store_path(self.path)
            remote.fs.rm(remote.path, recursive=True)
            return
        for p in local_path(self.path).iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()

    def _create(self, obs_dim: int, action_dim: int, chunk_len: int, first_episode_id: int, task_names) -> None:
        static = {"format": FORMAT, "obs_dim": obs_dim, "action_dim": action_dim, "chunk_len": chunk_len}
        if task_names is not None:
            static["tasks"] = [str(t) for t in task_names]
        g = zarr.create_group(store=zarr_store(self.path), attributes={ATTR_KEY: static})
        for name in ROW_ARRAYS:
            tail = row_tail(name, obs_dim, action_dim)
            g.create_array(
                name,
                shape=(0, *tail),
                chunks=(chunk_len, *tail),
                dtype=ROW_DTYPES[name],
                compressors=compressors(),
                fill_value=ROW_FILL.get(name, 0),
                dimension_names=("row", *(f"{name}_dim",) * len(tail)),
                config=WRITE_CONFIG,
            )
        eg = g.create_group(EPISODE_GROUP)
        for name, dtype in {**EPISODE_ARRAYS, EPISODE_VERSION: np.int64}.items():
            eg.create_array(
                name,
                shape=(0,),
                chunks=(INDEX_CHUNK_LEN,),
                dtype=dtype,
                compressors=compressors(),
                fill_value=-1,
                dimension_names=("episode",),
                config=WRITE_CONFIG,
            )
        g.create_group(TASK_GROUP)
        g.attrs[ATTR_KEY] = {**static, "commit": Commit(next_episode_id=first_episode_id, time=time.time()).to_json()}

    def _recover(self) -> None:
        """Drop what a killed writer left beyond the commit record; load the live index."""
        _, commit = read_state(self.path)
        for root, _, files in (
            [] if self.remote else os.walk(local_path(self.path))
        ):  # an object PUT leaves no temp file
            for f in files:
                if f.endswith(".partial"):  # temp file of a write that was killed before its rename
                    os.remove(os.path.join(root, f))
        g = open_group(self.path, mode="r+")
        self._group = g
        self._rows = open_arrays(g, ROW_ARRAYS, write=True)
        episodes, tasks = group_at(g, EPISODE_GROUP), group_at(g, TASK_GROUP)
        optional = [EPISODE_VERSION] if EPISODE_VERSION in episodes else []  # older shards lack it
        self._episodes = open_arrays(episodes, [*EPISODE_ARRAYS, *optional], write=True)
        self._tasks = open_arrays(tasks, [n for n, _ in tasks.arrays()], write=True)
        C = self.info.chunk_len
        # on an object store arrays are grown ahead (GROW_CHUNKS): a shape up to that is not a leftover, and
        # what a killed writer left inside it is overwritten (whole chunks) before any record covers it
        ahead = (lambda n, k: _round_up(n, k)) if self.remote else (lambda n, k: n)
        for arr in self._rows.values():
            if arr.shape[0] > ahead(commit.rows, C * GROW_CHUNKS):
                arr.resize((commit.rows, *arr.shape[1:]))
        for name, arr in self._rows.items():  # chunks an interrupted eviction did not delete yet
            for k in range(commit.first_row // C):
                chunk_file(self.path, name, k, arr.ndim).unlink(missing_ok=True)
        for arr in self._episodes.values():
            if arr.shape[0] > ahead(commit.episodes, INDEX_CHUNK_LEN):
                arr.resize((commit.episodes,))
        for name, arr in self._tasks.items():
            if arr.shape[0] > ahead(commit.task_index.get(int(name), 0), INDEX_CHUNK_LEN):
                arr.resize((commit.task_index.get(int(name), 0),))
        live = slice(commit.first_episode, commit.episodes)
        # ordinals >= first_episode
        self._index: dict[str, np.ndarray] = {k: read_rows(a, live) for k, a in self._episodes.items()}
        attrs = shard_attrs(g)
        if attrs is None:  # read_state found it just now
            raise ShardLayoutError(
                f"{self.path}: the '{ATTR_KEY}' attribute is gone (another process replaced the shard?)"
            )
        self._static = {k: v for k, v in attrs.items() if k != "commit"}
        self._commit = commit
        self._n_episodes = commit.episodes
        self._task_index = dict(commit.task_index)
        self._next_row = _round_up(commit.rows, C)
        self._next_id = commit.next_episode_id
        self._tails: dict[str, np.ndarray] = {}  # index array -> its entries in its last chunk (see _index_job)

    # ---- writing -------------------------------------------------------------------------
    def seen(self, source: tuple[str, int]) -> bool:
        """Whether the episode with this (producer, sequence) id was added already (committed, or
        pending in this writer): a retried insert must not store it twice. Producers number
        their episodes 0, 1, 2, ...; they may arrive out of order (a gap is recorded until filled)."""
        producer, seq = str(source[0]), int(source[1])
        if (producer, seq) in self._pending_sources:
            return True
        return seq <= self._commit.sources.get(producer, -1) and seq not in self._commit.source_gaps.get(producer, ())

    def add_episode(
        self,
        obs,
        action,
        reward,
        terminated,
        truncated,
        task: int,
        source: tuple[str, int] | None = None,
        version: int = -1,
    ) -> int:
        """Append one episode (arrays [T+1, ...] in the row convention); returns its episode id.
        `source` (producer, sequence) is recorded in the commit record (see `seen`); `version`,
        the weights version it was collected with, in the episode index.

        Whole chunks are committed as they fill; the rest waits for the next chunk or flush().
        """
        if self._closed:
            raise RuntimeError(f"ShardWriter for {self.path} is closed")
        rows = episode_rows(
            obs, action, reward, terminated, truncated, task, obs_dim=self.info.obs_dim, action_dim=self.info.action_dim
        )
        n = len(rows["obs"])
        eid = self._next_id
        self._next_id += 1
        rows["task"] = np.full(n, task, np.int32)
        rows["episode"] = np.full(n, eid, np.int64)
        rows["step"] = np.arange(n, dtype=np.int32)
        self._pending.append((eid, self._next_row + self._buffered, n, int(task), int(version)))
        if source is not None:
            self._pending_sources.add((str(source[0]), int(source[1])))
            self._source_of[eid] = (str(source[0]), int(source[1]))
        self._buffer.append(rows)
        self._buffered += n
        if self._buffered >= self.info.chunk_len:
            self._write(whole_chunks_only=True)
        return eid

    def flush(self) -> None:
        """Commit everything added so far (the last chunk is written padded and never reused)."""
        if self._buffered:
            self._write(whole_chunks_only=False)

    def _write(self, whole_chunks_only: bool) -> None:
        C = self.info.chunk_len
        n = (self._buffered // C) * C if whole_chunks_only else self._buffered
        data = {k: np.concatenate([b[k] for b in self._buffer]) for k in ROW_ARRAYS}
        start, end = self._next_row, self._next_row + n
        written: list[StoragePath] = []
        self._lock.check()  # a writer whose lease was taken over writes nothing more (object store)
        if self.remote:  # arrays grown ahead (see GROW_CHUNKS); the last chunk written whole, padded with fill
            padded = _round_up(end, C) - start
            jobs = [
                (
                    arr,
                    (max(arr.shape[0], _round_up(end, C * GROW_CHUNKS)), *arr.shape[1:]),
                    start,
                    _pad(data[name][:n], padded, ROW_FILL.get(name, 0)),
                )
                for name, arr in self._rows.items()
            ]
        else:
            jobs = [(arr, (end, *arr.shape[1:]), start, data[name][:n]) for name, arr in self._rows.items()]
        _write_all(jobs)
        for name, arr in self._rows.items():
            written += [chunk_file(self.path, name, k, arr.ndim) for k in range(start // C, _round_up(end, C) // C)]
            written.append(self.path / name / "zarr.json")  # the resized shape
        self._faults.reached("chunk-data")
        rest = {k: v[n:] for k, v in data.items()}
        self._buffer = [rest] if len(rest["obs"]) else []
        self._buffered -= n
        done = [p for p in self._pending if p[1] + p[2] <= end]
        self._pending = [p for p in self._pending if p[1] + p[2] > end]
        written += self._append_index(done)
        sources = dict(self._commit.sources)
        gaps = {p: set(v) for p, v in self._commit.source_gaps.items()}
        for eid, *_ in done:
            if eid in self._source_of:
                producer, seq = self._source_of.pop(eid)
                self._pending_sources.discard((producer, seq))
                top = sources.get(producer, -1)
                if seq > top:
                    gaps.setdefault(producer, set()).update(range(top + 1, seq))
                    sources[producer] = seq
                else:
                    gaps.get(producer, set()).discard(seq)
        gaps = {p: sorted(v) for p, v in gaps.items() if v}
        self._faults.reached("index")
        self._commit_state(end, written, sources, gaps)
        self._next_row = _round_up(end, C)

    def _append_index(self, done: list[tuple[int, int, int, int, int]]) -> list[StoragePath]:
        if not done:
            return []
        e0, e1 = self._n_episodes, self._n_episodes + len(done)
        cols: dict[str, np.ndarray] = dict(
            zip(
                ("id", "start", "length", "task", EPISODE_VERSION),
                map(np.asarray, zip(*done, strict=False)),
                strict=False,
            )
        )
        jobs = [self._index_job(arr, e0, cols[name]) for name, arr in self._episodes.items()]
        for t in np.unique(cols["task"]):
            t = int(t)
            if str(t) not in self._tasks:
                self._tasks[str(t)] = group_at(self._group, TASK_GROUP).create_array(
                    str(t),
                    shape=(0,),
                    chunks=(INDEX_CHUNK_LEN,),
                    dtype=np.int64,
                    compressors=compressors(),
                    fill_value=-1,
                    dimension_names=("entry",),
                    config=WRITE_CONFIG,
                )
            arr = self._tasks[str(t)]
            ordinals = e0 + np.flatnonzero(cols["task"] == t)
            n0 = self._task_index.get(t, 0)
            jobs.append(self._index_job(arr, n0, ordinals))
            self._task_index[t] = n0 + len(ordinals)
        _write_all(jobs)
        for k in self._index:
            self._index[k] = np.concatenate([self._index[k], cols[k].astype(self._index[k].dtype)])
        self._n_episodes = e1
        files = []
        for arr, *_ in jobs:
            path = self.path / arr.path
            files += [path / "c" / str(k) for k in range((arr.shape[0] - 1) // INDEX_CHUNK_LEN + 1)][-2:]
            files.append(path / "zarr.json")  # resized shape, or a task array created just now
        return files

    def _index_job(self, arr: zarr.Array, n0: int, values: np.ndarray):
        """The write that appends `values` to the index array `arr` (committed length n0): from the start
        of its last chunk, with the entries already there carried from RAM (read once per writer), so
        each chunk is written whole and never read back first (a read-modify-write is two more round
        trips on an object store). Keeps the new last chunk's entries for the next append."""
        k0 = (n0 // INDEX_CHUNK_LEN) * INDEX_CHUNK_LEN
        held = self._tails.get(arr.path)
        if held is None or len(held) != n0 - k0:
            held = read_rows(arr, slice(k0, n0)) if n0 > k0 else np.zeros(0, arr.dtype)
        full = np.concatenate([held, np.asarray(values).astype(arr.dtype)])
        n1 = n0 + len(values)
        self._tails[arr.path] = full[(n1 // INDEX_CHUNK_LEN) * INDEX_CHUNK_LEN - k0 :]
        if self.remote:  # grown a chunk at a time, its last chunk written whole (padded with the fill, -1)
            end = _round_up(n1, INDEX_CHUNK_LEN)
            return arr, (max(arr.shape[0], end),), k0, _pad(full, end - k0, -1)
        return arr, (n1,), k0, full

    def quarantine(self, array: str, chunk: int, reason: str) -> Quarantine:
        """Set aside the live episodes with rows in committed `chunk` (damaged: missing or not decoding),
        recorded in a new commit record so that every reader, and this shard reopened, leaves them out;
        the rest of the shard stays live. A chunk already set aside returns its record unchanged."""
        for q in self._commit.quarantine:
            if q["chunk"] == chunk:
                return Quarantine.from_record(self.path, q)
        C = self.info.chunk_len
        if not self._commit.first_row // C <= chunk < _round_up(self._commit.rows, C) // C:
            raise ValueError(f"shard {self.path}: chunk {chunk} is not a committed live chunk")
        hit = episodes_in_chunk(self._index["start"], self._index["length"], chunk, C)
        ids = [int(e) for e in self._index["id"][hit] if int(e) not in self._commit.quarantined_ids()]
        keep = np.isin(self._index["id"][hit], ids)
        q = Quarantine(
            str(self.path),
            array,
            int(chunk),
            " ".join(str(reason).split())[:300],
            tuple(ids),
            int((self._index["length"][hit][keep] - 1).sum()),
        )
        self._commit_state(
            self._commit.rows,
            [],
            self._commit.sources,
            self._commit.source_gaps,
            quarantine=[*self._commit.quarantine, q.record()],
        )
        return q

    def _commit_state(
        self,
        rows: int,
        written: list[StoragePath],
        sources: dict[str, int],
        source_gaps: dict[str, list[int]],
        quarantine: list[dict] | None = None,
    ) -> None:
        old = self._commit
        C = self.info.chunk_len
        first_row = old.first_row
        if self.capacity is not None and rows - first_row > self.capacity:
            first_row = _round_up(rows - self.capacity, C)
        drop = int(np.searchsorted(self._index["start"], first_row))  # starts increase with ordinal
        self._index = {k: v[drop:] for k, v in self._index.items()}
        # entries of evicted chunks go with them
        quarantine = [q for q in (old.quarantine if quarantine is None else quarantine) if q["chunk"] >= first_row // C]
        aside = np.isin(self._index["id"], [e for q in quarantine for e in q["episodes"]])
        live_tasks, lengths = self._index["task"][~aside], self._index["length"][~aside]
        per_task = {
            int(t): [int((live_tasks == t).sum()), int((lengths[live_tasks == t] - 1).sum())]
            for t in np.unique(live_tasks)
        }
        commit = Commit(
            rows=rows,
            episodes=self._n_episodes,
            next_episode_id=self._next_id,
            first_row=first_row,
            first_episode=old.first_episode + drop,
            task_index=dict(self._task_index),
            live_episodes=len(lengths),
            live_transitions=int((lengths - 1).sum()),
            live_per_task=per_task,
            generation=old.generation + 1,
            capacity=self.capacity,
            time=time.time(),
            sources=sources,
            source_gaps=source_gaps,
            quarantine=quarantine,
        )
        durable = self.durable and not self.remote  # an object PUT is durable when it returns
        if durable:  # everything the record references is on disk before the record
            fsync_paths(written, root=local_path(self.path))
        if self.remote:
            self._lock.check()
            self._faults.reached("commit-record")  # no temp file there: killed just before the record's PUT
            self._group.attrs[ATTR_KEY] = {**self._static, "commit": commit.to_json()}
        else:
            with self._faults.before_rename("commit-record", local_path(self.path) / "zarr.json"):
                self._group.attrs[ATTR_KEY] = {**self._static, "commit": commit.to_json()}
        if durable:
            fsync_paths([self.path / "zarr.json"])
        self._commit = commit
        for name, arr in self._rows.items():  # evicted chunks go only after the record no longer covers them
            for k in range(old.first_row // C, first_row // C):
                chunk_file(self.path, name, k, arr.ndim).unlink(missing_ok=True)
                self._faults.reached("eviction")

    # ---- state ---------------------------------------------------------------------------
    @property
    def commit(self) -> Commit:
        """The last commit record this writer wrote (or found on reopening)."""
        return self._commit

    def committed_state(self) -> tuple[Commit, dict[str, np.ndarray], dict[str, zarr.Array]]:
        """(the last commit record, its live episode index, the open row arrays): what a reader in this
        process takes instead of reading them back (`ShardReader.adopt`)."""
        return self._commit, self._index, self._rows

    @property
    def pending_rows(self) -> int:
        """Rows added but not yet committed (lost if the process dies now)."""
        return self._buffered

    @property
    def next_episode_id(self) -> int:
        return self._next_id

    def close(self) -> None:
        """Flush and release the writer lock; the shard can then be reopened by any process."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._lock.release()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
