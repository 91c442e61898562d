"""Streaming, resumable import of TD-MPC2 dataset chunks into one replay shard.

The resume point is the shard itself: files are imported in sorted order, episode by episode,
so the shard's committed episode count says exactly how far a previous (killed or interrupted)
import got; a resumed import skips that many episodes and never duplicates one. A small record
beside the shard (`<shard>.import.json`) pins the list of source files (names, sizes, episode
counts and a fingerprint of each file's head and tail) so a resume with different files fails instead of mixing them.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from distributed.offline.tdmpc2_format import ChunkFormatError, read_chunk

IMPORT_RECORD_SUFFIX = ".import.json"


def chunk_files(source) -> list[Path]:
    """A directory (its `*.pt` files, sorted), one file, or a list of files (kept in the given order)."""
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_dir():
            files = sorted(p.glob("*.pt"))
            if not files:
                raise FileNotFoundError(f"no *.pt dataset chunks in {p}")
            return files
        source = [p]
    files = [Path(f) for f in source]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"dataset chunk files not found: {missing}")
    return files


def import_record_path(shard: str | os.PathLike) -> Path:
    return Path(str(Path(shard)) + IMPORT_RECORD_SUFFIX)


def import_tdmpc2(
    source,
    shard: str | os.PathLike,
    *,
    obs_dim: int | None = None,
    action_dim: int | None = None,
    chunk_len: int | None = None,
    flush_every: int = 64,
    durable: bool = True,
    progress: bool = True,
    on_commit: Callable[[int], None] | None = None,
    task_names: list[str] | None = None,
) -> dict:
    """Import every episode of the chunk files in `source` into the replay shard at `shard`.

    obs/action are zero-padded to `obs_dim`/`action_dim` (default: the largest in the files).
    `task_names` (the names of the task ids the files use, in id order: e.g. TD-MPC2's mt80 list)
    are recorded in the store, so a training job checks them against its task set by name.
    Row 0's NaN action/reward become 0 (the store's convention). An episode ends `terminated`
    if the file has a `terminated` key set on its last row, else `truncated` (time limit).
    Every file is checked before anything is written. Commits every `flush_every` episodes and
    then calls `on_commit(episodes committed so far)`. durable=False skips the fsyncs (about 2x
    faster; a killed process still loses nothing committed, a power loss may). Re-running resumes; returns
    {"episodes", "imported", "skipped", "transitions", "shard"}.
    """
    from distributed.replay.layout import read_state
    from distributed.replay.writer import ShardWriter

    files = chunk_files(source)
    shard = Path(shard)
    # header pass: memory-mapped, so this reads the layout, not the data
    shapes = [(*d["obs"].shape, d["action"].shape[2]) for d in map(read_chunk, files)]  # (N, T+1, O, A) per file
    sources = [
        {
            "name": f.name,
            "size": f.stat().st_size,
            "fingerprint": _fingerprint(f),
            "episodes": n,
            "rows_per_episode": t1,
        }
        for f, (n, t1, _, _) in zip(files, shapes, strict=False)
    ]
    dims = [(o, a) for _, _, o, a in shapes]
    obs_dim = obs_dim or max(o for o, _ in dims)
    action_dim = action_dim or max(a for _, a in dims)
    too_big = [(f.name, o, a) for f, (o, a) in zip(files, dims, strict=False) if o > obs_dim or a > action_dim]
    if too_big:
        raise ChunkFormatError(
            f"files {too_big} (name, obs dim, action dim) exceed the requested "
            f"obs_dim={obs_dim}, action_dim={action_dim}"
        )

    record_path = import_record_path(shard)
    committed = 0
    if (shard / "zarr.json").exists():
        if not record_path.exists():
            raise ValueError(
                f"{shard} already holds a replay shard that was not made by an import "
                f"(no {record_path.name}); import into a new path"
            )
        record = json.loads(record_path.read_text())
        old = record["sources"]
        if sources[: len(old)] != old:
            raise ValueError(
                f"{shard} was imported from other files {[s['name'] for s in old]} "
                f"(or they changed since); resume with the same files, or import into a new path"
            )
        committed = read_state(shard)[1].episodes
    total = sum(s["episodes"] for s in sources)
    if committed > total:
        raise ValueError(f"{shard} holds {committed} episodes, more than the {total} in the source files")
    tmp = record_path.with_name(record_path.name + ".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps({"sources": sources, "obs_dim": obs_dim, "action_dim": action_dim}, indent=1))
    os.replace(tmp, record_path)

    bar = tqdm(
        total=total,
        initial=committed,
        unit="ep",
        desc=f"import -> {shard.name}",
        dynamic_ncols=True,
        disable=not progress,
    )
    imported, transitions = 0, 0
    starts = itertools.accumulate((s["episodes"] for s in sources), initial=0)  # each file's first episode
    with ShardWriter(
        shard, obs_dim=obs_dim, action_dim=action_dim, chunk_len=chunk_len, durable=durable, task_names=task_names
    ) as writer:
        for f, src, start in zip(files, sources, starts, strict=False):
            n = src["episodes"]
            if start + n <= committed:
                continue
            data = read_chunk(f)
            for i in range(max(committed - start, 0), n):
                episode = _episode_rows(data, i, obs_dim, action_dim, f)
                if task_names is not None and not 0 <= int(episode["task"]) < len(task_names):
                    raise ChunkFormatError(
                        f"{f} episode {i} has task id {int(episode['task'])}; the given task "
                        f"names cover ids 0..{len(task_names) - 1}"
                    )
                try:
                    writer.add_episode(**episode)
                except ValueError as exc:
                    raise ChunkFormatError(f"{f} episode {i}: {exc}") from exc
                imported += 1
                transitions += episode["obs"].shape[0] - 1
                bar.update(1)
                if imported % flush_every == 0:
                    writer.flush()
                    if on_commit is not None:
                        on_commit(committed + imported)
            del data
        writer.flush()
    if on_commit is not None:
        on_commit(committed + imported)
    bar.close()
    return {
        "episodes": total,
        "imported": imported,
        "skipped": committed,
        "transitions": transitions,
        "shard": str(shard),
    }


def _fingerprint(path: Path, span: int = 1 << 20) -> str:
    """sha256 of the file's first and last MiB (and its size): tells files apart without reading GBs."""
    import hashlib

    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f:
        h.update(f.read(span))
        if size > span:
            f.seek(max(size - span, span))
            h.update(f.read(span))
    h.update(str(size).encode())
    return h.hexdigest()[:16]


def _episode_rows(data: dict, i: int, obs_dim: int, action_dim: int, path: Path) -> dict:
    """Episode i of a chunk as ShardWriter.add_episode arguments (store convention)."""
    obs = data["obs"][i].float().numpy()
    action = data["action"][i].float().numpy().copy()
    reward = data["reward"][i].float().numpy().copy()
    task = data["task"][i].numpy()
    if (task != task[0]).any():
        raise ChunkFormatError(
            f"{path} episode {i}: task changes within the episode ({np.unique(task).tolist()}); "
            f"expected one task index per episode"
        )
    t1 = obs.shape[0]
    action[0], reward[0] = 0.0, 0.0  # TD-MPC2 keeps NaN on row 0
    if obs.shape[1] < obs_dim:
        obs = np.pad(obs, ((0, 0), (0, obs_dim - obs.shape[1])))
    if action.shape[1] < action_dim:
        action = np.pad(action, ((0, 0), (0, action_dim - action.shape[1])))
    terminated, truncated = np.zeros(t1, bool), np.zeros(t1, bool)
    if "terminated" in data:
        flags = data["terminated"][i, 1:].float().numpy()
        if (np.nan_to_num(flags[:-1]) != 0).any():
            raise ChunkFormatError(
                f"{path} episode {i}: terminated is set before the last row; "
                f"expected 1 only on the last row of an episode"
            )
        terminated[-1] = flags[-1] > 0.5
    truncated[-1] = not terminated[-1]
    return {
        "obs": obs,
        "action": action,
        "reward": reward,
        "terminated": terminated,
        "truncated": truncated,
        "task": int(task[0]),
    }


def import_tdmpc2_sharded(
    source, out_dir: str | os.PathLike, num_shards: int, *, progress: bool = True, **kwargs
) -> list[dict]:
    """Import into `num_shards` shards `out_dir/shard-NNN` in parallel processes (the writer's
    commits, not reading, bound one importer). Files are split into contiguous groups in sorted
    order; each shard resumes on its own, so re-running resumes the whole import. obs/action
    dims default to the largest over all files, so every shard has the same layout.
    Returns each shard's report."""
    import multiprocessing as mp
    import time
    from concurrent.futures import ProcessPoolExecutor

    from distributed.replay.layout import read_state

    files = chunk_files(source)
    num_shards = max(1, min(num_shards, len(files)))
    # (episodes, obs dim, action dim) of every file, memory-mapped
    shapes = [(d["obs"].shape[0], d["obs"].shape[2], d["action"].shape[2]) for d in map(read_chunk, files)]
    kwargs["obs_dim"] = kwargs.get("obs_dim") or max(o for _, o, _ in shapes)
    kwargs["action_dim"] = kwargs.get("action_dim") or max(a for _, _, a in shapes)
    bounds = np.linspace(0, len(files), num_shards + 1).round().astype(int)
    groups = [files[bounds[i] : bounds[i + 1]] for i in range(num_shards)]
    shards = [Path(out_dir) / f"shard-{i:03d}" for i in range(num_shards)]
    total = sum(n for n, _, _ in shapes)
    bar = tqdm(
        total=total,
        unit="ep",
        desc=f"import -> {out_dir} ({num_shards} shards)",
        dynamic_ncols=True,
        disable=not progress,
    )
    with ProcessPoolExecutor(num_shards, mp_context=mp.get_context("spawn")) as pool:
        futures = [
            pool.submit(import_tdmpc2, g, s, progress=False, **kwargs) for g, s in zip(groups, shards, strict=False)
        ]
        while not all(f.done() for f in futures):
            time.sleep(0.5)
            if progress:
                done = 0
                for s in shards:
                    try:
                        done += read_state(s)[1].episodes
                    except Exception:  # not created yet
                        pass
                bar.n = done
                bar.refresh()
        reports = [f.result() for f in futures]
    bar.n = total
    bar.close()
    return reports
