"""`python -m distributed.replay.inspect <shard> [<shard> ...]`: print a shard's summary.

Reads only the commit record (and the directory sizes), so it is instant on any store size.
"""

from __future__ import annotations

import argparse
import datetime
import os
from typing import TYPE_CHECKING, cast

from distributed.replay.layout import array_at, group_at, object_store_path, open_group, read_rows, read_state
from distributed.storage import is_remote, local_path, storage_path

if TYPE_CHECKING:
    import numpy as np

    from distributed.storage import Location, StoragePath


def size_on_disk(path: StoragePath) -> int:
    """Bytes of all files (or objects) under `path`."""
    if is_remote(path):
        remote = object_store_path(path)
        # fsspec's du is unannotated (int | dict inferred); with total=True, its default, it returns the int sum
        return int(cast(int, remote.fs.du(remote.path)))
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(local_path(path)) for f in files)


def summary(path: Location) -> str:
    """A human-readable summary: steps, episodes, per-task counts, chunks, size on disk."""
    path = storage_path(path)
    info, c = read_state(path)
    when = datetime.datetime.fromtimestamp(c.time).isoformat(timespec="seconds")
    lines = [
        f"shard        {path}",
        f"dims         obs {info.obs_dim}, action {info.action_dim}; chunk {info.chunk_len} rows",
        f"transitions  {c.live_transitions}",
        f"episodes     {c.live_episodes} (next id {c.next_episode_id})",
        f"rows         {c.rows - c.first_row} live of {c.rows} written; {c.first_row // info.chunk_len} chunks evicted"
        + (f" (capacity {c.capacity})" if c.capacity else ""),
        f"size on disk {size_on_disk(path) / 2**20:.2f} MiB",
        f"last commit  #{c.generation} at {when}",
        "per task     task  episodes  transitions",
    ]
    lines += [f"             {t:4d}  {e:8d}  {n:11d}" for t, (e, n) in sorted(c.live_per_task.items()) if e]
    return "\n".join(lines)


def episode_index(path: Location) -> dict[str, np.ndarray]:
    """The live episodes' index columns {id, start, length, task, version} as arrays (version -1
    where the shard does not record it)."""
    import numpy as np

    from distributed.replay.layout import EPISODE_ARRAYS, EPISODE_GROUP, EPISODE_VERSION

    _, c = read_state(path)
    g = group_at(open_group(path, mode="r"), EPISODE_GROUP)
    live = slice(c.first_episode, c.episodes)
    out = {k: read_rows(array_at(g, k), live) for k in EPISODE_ARRAYS}
    out[EPISODE_VERSION] = (
        read_rows(array_at(g, EPISODE_VERSION), live) if EPISODE_VERSION in g else np.full(c.live_episodes, -1)
    )
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Print the summary of replay shards.")
    parser.add_argument("paths", nargs="+", help="shard directories")
    args = parser.parse_args(argv)
    print("\n\n".join(summary(p) for p in args.paths))


if __name__ == "__main__":
    main()
