"""verify_shard: a full check that a shard's committed content is complete and self-consistent.

Reads every live chunk of every row array once (streaming, one chunk in RAM at a time) and
checks it against the episode index, the per-task indexes and the commit record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import zarr

from distributed.replay.errors import ChunkError, ShardInconsistentError
from distributed.replay.layout import (
    EPISODE_ARRAYS,
    EPISODE_GROUP,
    ROW_ARRAYS,
    TASK_GROUP,
    array_at,
    chunk_file,
    group_at,
    open_group,
    read_rows,
    read_state,
)
from distributed.storage import storage_path

if TYPE_CHECKING:
    from distributed.storage import Location


@dataclass
class VerifyReport:
    """What verify_shard found in a healthy shard."""

    shard: str
    rows: int
    chunks_checked: int
    episodes: int  # live
    transitions: int  # live
    per_task: dict[int, list[int]] = field(default_factory=dict)  # task -> [episodes, transitions]
    orphan_rows: int = 0  # rows of an episode whose tail a killed writer lost (never sampled)
    padding_rows: int = 0
    quarantined_chunks: list[int] = field(
        default_factory=list
    )  # damaged, recorded: not read, their episodes live no more


def verify_shard(path: Location) -> VerifyReport:
    """Check everything committed in the shard at `path`; returns a VerifyReport.

    Raises ChunkError (naming shard, array and chunk) for a missing or corrupted chunk and
    ShardInconsistentError when data, indexes and commit record disagree. Chunks the commit record
    has quarantined are not read, and their episodes are not counted live.
    """
    path = storage_path(path)
    info, c = read_state(path)
    C = info.chunk_len
    g = open_group(path, mode="r")

    def fail(msg: str) -> NoReturn:
        raise ShardInconsistentError(path, msg)

    def read(arr: zarr.Array, name: str, k: int, lo: int, hi: int) -> np.ndarray:
        if not chunk_file(path, name, k, arr.ndim).exists():
            raise ChunkError(path, name, k, "missing")
        try:
            return read_rows(arr, slice(lo, hi))
        except Exception as e:
            raise ChunkError(path, name, k, f"corrupted ({type(e).__name__}: {e})") from e

    # Episode index: unique increasing ids, ordered non-overlapping ranges inside committed rows.
    eg = group_at(g, EPISODE_GROUP)
    ep_arrays = {k: array_at(eg, k) for k in EPISODE_ARRAYS}
    for k, a in ep_arrays.items():
        if a.shape[0] < c.episodes:
            fail(f"episodes/{k} has {a.shape[0]} entries but the commit record says {c.episodes}")
    ep = {k: read_rows(a, slice(None, c.episodes)) for k, a in ep_arrays.items()}
    ids, start, length, task = ep["id"], ep["start"], ep["length"], ep["task"]
    if len(ids):
        if (np.diff(ids) <= 0).any():
            fail("episode ids are not unique and increasing")
        if ids[-1] >= c.next_episode_id:
            fail(f"episode id {ids[-1]} >= next_episode_id {c.next_episode_id}")
        if (length < 2).any() or (start[1:] < start[:-1] + length[:-1]).any():
            fail("episode ranges overlap or an episode has fewer than 2 rows")
        if start[-1] + length[-1] > c.rows:
            fail(f"episode {ids[-1]} ends at row {start[-1] + length[-1]} beyond committed rows {c.rows}")
    fe = c.first_episode
    if (start[fe:] < c.first_row).any() or (fe and start[fe - 1] >= c.first_row):
        fail(f"first_episode {fe} does not match the eviction point first_row {c.first_row}")

    # Per-task indexes list every ordinal of their task, in order.
    tg = group_at(g, TASK_GROUP)
    stored = {int(n) for n, _ in tg.arrays()}
    for t in sorted(set(np.unique(task).tolist()) | set(c.task_index)):
        n = c.task_index.get(t, 0)
        got = read_rows(array_at(tg, str(t)), slice(None, n)) if t in stored else np.zeros(0, np.int64)
        if len(got) != n or not np.array_equal(got, np.flatnonzero(task == t)):
            fail(f"tasks/{t} does not list exactly the episodes of task {t}")

    # Commit record's live summary matches the index, less the quarantined episodes.
    aside = np.isin(ids[fe:], list(c.quarantined_ids()))
    lt, ll = task[fe:][~aside], length[fe:][~aside]
    per_task = {int(t): [int((lt == t).sum()), int((ll[lt == t] - 1).sum())] for t in np.unique(lt)}
    if (c.live_episodes, c.live_transitions) != (len(ll), int((ll - 1).sum())) or per_task != {
        t: v for t, v in c.live_per_task.items() if v[0]
    }:
        fail("commit record's live counts disagree with the episode index")

    # Rows, chunk by chunk: each live episode's rows carry its id, steps 0..L-1 and task.
    rows = {n: array_at(g, n) for n in ROW_ARRAYS}
    for n, a in rows.items():
        if a.shape[0] < c.rows:
            fail(f"array {n} has {a.shape[0]} rows but the commit record says {c.rows}")
    ls, lid, lend, lt = start[fe:], ids[fe:], start[fe:] + length[fe:], task[fe:]
    orphans = padding = checked = 0
    damaged = sorted({q["chunk"] for q in c.quarantine})
    for k in range(c.first_row // C, -(-c.rows // C)):
        if k in damaged:
            continue
        lo, hi = k * C, min((k + 1) * C, c.rows)
        d = {n: read(a, n, k, lo, hi) for n, a in rows.items()}
        want_id = np.full(hi - lo, -1, np.int64)
        want_step = np.full(hi - lo, -1, np.int64)
        want_task = np.full(hi - lo, -1, np.int64)
        last = np.zeros(hi - lo, bool)
        for i in range(np.searchsorted(lend, lo, "right"), np.searchsorted(ls, hi, "left")):
            a, b = max(ls[i], lo), min(lend[i], hi)
            want_id[a - lo : b - lo] = lid[i]
            want_step[a - lo : b - lo] = np.arange(a - ls[i], b - ls[i])
            want_task[a - lo : b - lo] = lt[i]
            if lend[i] <= hi:
                last[lend[i] - 1 - lo] = True
        cov = want_id >= 0
        for name, want in (("episode", want_id), ("step", want_step), ("task", want_task)):
            bad = np.flatnonzero(cov & (d[name] != want))
            if len(bad):
                r = lo + bad[0]
                fail(f"row {r} (chunk {k}) has {name}={d[name][bad[0]]}, the index says {want[bad[0]]}")
        first = cov & (want_step == 0)
        if (
            d["action"][first].any()
            or d["reward"][first].any()
            or d["terminated"][first].any()
            or d["truncated"][first].any()
        ):
            fail(f"an episode's row 0 in chunk {k} has a nonzero action/reward/flag")
        if (d["terminated"] | d["truncated"])[cov & ~last & ~first].any():
            fail(f"a terminated/truncated flag before an episode's last row in chunk {k}")
        if not (
            np.isfinite(d["obs"][cov]).all()
            and np.isfinite(d["action"][cov]).all()
            and np.isfinite(d["reward"][cov]).all()
        ):
            fail(f"non-finite obs/action/reward in chunk {k}")
        stray = d["episode"][~cov]
        if np.isin(stray, lid).any():
            fail(f"chunk {k} holds rows of a live episode outside that episode's range")
        evicted_tail = np.isin(stray, ids[:fe])  # an evicted episode's rows past the eviction point
        orphans += int((~evicted_tail & (stray >= 0)).sum())
        padding += int((stray < 0).sum())
        checked += 1
    return VerifyReport(str(path), c.rows, checked, len(ll), int((ll - 1).sum()), per_task, orphans, padding, damaged)
