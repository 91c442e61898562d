"""Write a replay store's episodes back out as TD-MPC2 dataset chunks (tdmpc2_format.py).

Episodes go out in commit order, shard after shard, `episodes_per_file` to a file; a file
holds episodes of one length only (a chunk is a [N, T+1] batch), so a change of length starts
a new file. Importing the output again gives the same episodes; exporting what was imported
gives the original files back exactly (same keys, shapes, dtypes and values).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import zarr
from tqdm import tqdm

from distributed.offline.tdmpc2_format import write_chunk


def store_episodes(shard: str | os.PathLike, batch: int = 64):
    """Yield lists of up to `batch` consecutive live episodes of a shard, each a dict of the
    store's rows (obs [T+1, O], action [T+1, A], reward, terminated [T+1], task int)."""
    from distributed.replay.layout import EPISODE_GROUP, array_at, read_rows, read_state

    _, commit = read_state(shard)
    g = zarr.open_group(str(shard), mode="r")
    index = {
        k: read_rows(array_at(g, f"{EPISODE_GROUP}/{k}"), slice(commit.first_episode, commit.episodes))
        for k in ("start", "length", "task")
    }
    live = np.flatnonzero(index["start"] >= commit.first_row)  # episodes whose head was evicted are gone
    for lo in range(0, len(live), batch):
        sel = live[lo : lo + batch]
        starts, lengths = index["start"][sel], index["length"][sel]
        r0, r1 = int(starts.min()), int((starts + lengths).max())
        rows = {k: read_rows(array_at(g, k), slice(r0, r1)) for k in ("obs", "action", "reward", "terminated")}
        yield [
            {**{k: v[s - r0 : s - r0 + n] for k, v in rows.items()}, "task": int(t)}
            for s, n, t in zip(starts, lengths, index["task"][sel], strict=False)
        ]


def export_tdmpc2(
    shards,
    out_dir: str | os.PathLike,
    *,
    episodes_per_file: int = 1000,
    obs_dim: int | None = None,
    action_dim: int | None = None,
    with_terminated: bool = False,
    prefix: str = "chunk",
    progress: bool = True,
) -> list[Path]:
    """Export the live episodes of `shards` (one path or a list) to `out_dir/<prefix>-NNNNN.pt`.

    obs_dim/action_dim cut the store's zero padding back to a smaller width (the cut columns
    must be zero). with_terminated adds the optional `terminated` key. Returns the files written.
    """
    shards = [shards] if isinstance(shards, (str, os.PathLike)) else list(shards)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    pending: list[dict] = []
    bar = tqdm(unit="ep", desc=f"export -> {out_dir}", dynamic_ncols=True, disable=not progress)

    def emit():
        if pending:
            path = out_dir / f"{prefix}-{len(written):05d}.pt"
            written.append(write_chunk(path, _chunk(pending, obs_dim, action_dim, with_terminated)))
            pending.clear()

    for shard in shards:
        for episodes in store_episodes(shard):
            for ep in episodes:
                if pending and (len(pending) == episodes_per_file or len(pending[0]["obs"]) != len(ep["obs"])):
                    emit()
                pending.append(ep)
                bar.update(1)
    emit()
    bar.close()
    return written


def _chunk(episodes: list[dict], obs_dim: int | None, action_dim: int | None, with_terminated: bool) -> dict:
    obs = np.stack([e["obs"] for e in episodes]).astype(np.float32)
    action = np.stack([e["action"] for e in episodes]).astype(np.float32)
    for name, arr, width in (("obs", obs, obs_dim), ("action", action, action_dim)):
        if width is not None and width < arr.shape[-1] and np.any(arr[..., width:]):
            raise ValueError(
                f"cannot cut {name} to {width} dims: columns {width}..{arr.shape[-1] - 1} are not all zero"
            )
    obs = obs[..., :obs_dim] if obs_dim else obs
    action = action[..., :action_dim] if action_dim else action
    reward = np.stack([e["reward"] for e in episodes]).astype(np.float32)
    action[:, 0], reward[:, 0] = np.nan, np.nan  # TD-MPC2 keeps NaN on row 0
    task = np.repeat(np.array([e["task"] for e in episodes], np.int64)[:, None], obs.shape[1], axis=1)
    out = {
        "obs": torch.from_numpy(obs),
        "action": torch.from_numpy(action),
        "reward": torch.from_numpy(reward),
        "task": torch.from_numpy(task),
    }
    if with_terminated:
        term = np.stack([e["terminated"] for e in episodes]).astype(np.float32)
        term[:, 0] = np.nan
        out["terminated"] = torch.from_numpy(term)
    return out
