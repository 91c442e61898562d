"""On-disk layout of one replay shard: array names, dtypes, codecs and the commit record.

README.md beside this file describes what a user sees with plain `zarr.open_group`.
Everything here is plain data; the writer and reader decide when to read or write it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from distributed.replay.errors import ShardLayoutError
from distributed.storage import local_path, storage_path, zarr_store

if TYPE_CHECKING:
    from upath import UPath
    from zarr.core.array_spec import ArrayConfigParams
    from zarr.core.common import AccessModeLiteral

    from distributed.storage import Location, StoragePath

FORMAT = "latentfleet.replay/1"
ATTR_KEY = "latentfleet_replay"
DEFAULT_CHUNK_LEN = 1024
INDEX_CHUNK_LEN = 4096
# Zarr skips writing (and deletes) all-fill chunks by default; a missing chunk must mean damage.
WRITE_CONFIG: ArrayConfigParams = {"write_empty_chunks": True}

# Rows along time; "episode" and "step" are -1 on padding rows.
ROW_ARRAYS = ("obs", "action", "reward", "terminated", "truncated", "task", "episode", "step")
ROW_DTYPES = {
    "obs": np.float32,
    "action": np.float32,
    "reward": np.float32,
    "terminated": np.bool_,
    "truncated": np.bool_,
    "task": np.int32,
    "episode": np.int64,
    "step": np.int32,
}
ROW_FILL = {"task": -1, "episode": -1, "step": -1}
# The arrays a sampler reads (task comes from the episode index).
SAMPLED_ARRAYS = ("obs", "action", "reward", "terminated")
# Episode index, one entry per committed episode (its ordinal), in commit order.
EPISODE_ARRAYS = {"id": np.int64, "start": np.int64, "length": np.int64, "task": np.int32}
# Also per episode, in shards made since it was added (older shards lack it; -1: not recorded):
# the version of the weights the episode was collected with (see Loop._publish).
EPISODE_VERSION = "version"
EPISODE_GROUP = "episodes"
TASK_GROUP = "tasks"


def compressors() -> list:
    """Blosc/zstd, then a CRC32C checksum so a corrupted chunk fails loudly instead of decoding."""
    return [BloscCodec(cname="zstd", clevel=3), Crc32cCodec()]


def row_tail(name: str, obs_dim: int, action_dim: int) -> tuple[int, ...]:
    return {"obs": (obs_dim,), "action": (action_dim,)}.get(name, ())


@dataclass
class Commit:
    """The committed state of a shard; written last, after the data it describes.

    rows: rows [0, rows) are written (rows below first_row are evicted); the next write starts
    at the next chunk boundary. episodes: entries of the episode index that are committed
    (ordinals below first_episode are evicted). task_index: committed length of tasks/<t>.
    live_*: what a sampler can use (whole episodes with start >= first_row).
    """

    rows: int = 0
    episodes: int = 0
    next_episode_id: int = 0
    first_row: int = 0
    first_episode: int = 0
    task_index: dict[int, int] = field(default_factory=dict)
    live_episodes: int = 0
    live_transitions: int = 0
    live_per_task: dict[int, list[int]] = field(default_factory=dict)  # task -> [episodes, transitions]
    generation: int = 0
    capacity: int | None = None
    time: float = 0.0
    sources: dict[str, int] = field(default_factory=dict)  # producer -> highest committed sequence number
    # producer -> sequence numbers below its highest that are not committed: a call retried to a
    # restarted shard can arrive before the resend of what the old incarnation lost
    source_gaps: dict[str, list[int]] = field(default_factory=dict)
    # damaged chunks and the live episodes set aside with them (see `Quarantine`), oldest first
    quarantine: list[dict] = field(default_factory=list)

    def quarantined_ids(self) -> set[int]:
        """Ids of the episodes every reader of this record leaves out."""
        return {int(e) for q in self.quarantine for e in q["episodes"]}

    def to_json(self) -> dict:
        d = asdict(self)
        d["task_index"] = {str(k): v for k, v in self.task_index.items()}
        d["live_per_task"] = {str(k): v for k, v in self.live_per_task.items()}
        return d

    @classmethod
    def from_json(cls, d: dict) -> Commit:
        d = dict(d)
        d["task_index"] = {int(k): int(v) for k, v in d["task_index"].items()}
        d["live_per_task"] = {int(k): [int(x) for x in v] for k, v in d["live_per_task"].items()}
        d["sources"] = {str(k): int(v) for k, v in d.get("sources", {}).items()}  # absent in older shards
        d["source_gaps"] = {str(k): [int(x) for x in v] for k, v in d.get("source_gaps", {}).items()}
        d["quarantine"] = [dict(q) for q in d.get("quarantine", [])]  # absent in older shards
        return cls(**d)


@dataclass(frozen=True)
class Quarantine:
    """One damaged chunk (missing, or failing its checksum/codec) and the live episodes whose rows it
    holds: those episodes are never sampled again; the rest of the shard is. `line()` is what a user
    reads (console, summary.json, eval.md)."""

    shard: str
    array: str
    chunk: int
    reason: str
    episodes: tuple[int, ...]  # episode ids
    transitions: int  # agent steps in those episodes

    def record(self) -> dict:
        """The entry kept in the shard's commit record (the shard's path is where it is kept)."""
        return {
            "array": self.array,
            "chunk": self.chunk,
            "reason": self.reason,
            "episodes": list(self.episodes),
            "transitions": self.transitions,
            "time": time.time(),
        }

    @classmethod
    def from_record(cls, shard, d: dict) -> Quarantine:
        return cls(
            str(shard),
            d["array"],
            int(d["chunk"]),
            d["reason"],
            tuple(int(e) for e in d["episodes"]),
            int(d["transitions"]),
        )

    def summary(self) -> dict:
        """What a run reports (summary.json): where, what it cost, why, and `line`."""
        return {
            "shard": self.shard,
            "array": self.array,
            "chunk": self.chunk,
            "episodes_lost": len(self.episodes),
            "transitions_lost": self.transitions,
            "reason": self.reason,
            "line": self.line(),
        }

    def line(self) -> str:
        return (
            f"replay shard {self.shard}: chunk {self.chunk} of '{self.array}' is {self.reason}; "
            f"{len(self.episodes)} episodes ({self.transitions} steps) in it set aside, the rest of the shard "
            f"is sampled"
        )


def episodes_in_chunk(start: np.ndarray, length: np.ndarray, chunk: int, chunk_len: int) -> np.ndarray:
    """Positions (into `start`/`length`, an episode index) of the episodes with a row in `chunk`."""
    lo, hi = chunk * chunk_len, (chunk + 1) * chunk_len
    return np.flatnonzero((start < hi) & (start + length > lo))


@dataclass(frozen=True)
class ShardInfo:
    """What a shard was created with; never changes."""

    obs_dim: int
    action_dim: int
    chunk_len: int
    tasks: tuple[str, ...] | None = None  # task names by id (None: a store that does not record them)


def open_group(path: Location, mode: AccessModeLiteral) -> zarr.Group:
    """The shard's Zarr group at `path` (a directory, or an object-store URI through Zarr's FsspecStore)."""
    # Zarr v3, no consolidated metadata: opening reads the group's zarr.json and nothing else (no probing
    # for v2 files, one request on an object store)
    return zarr.open_group(zarr_store(path, read_only=mode == "r"), mode=mode, zarr_format=3, use_consolidated=False)


def read_state(path: Location) -> tuple[ShardInfo, Commit]:
    """Read the shard's static info and its commit record (one small JSON file, or object)."""
    info, commit, _ = open_state(path)
    return info, commit


def open_state(path: Location, mode: AccessModeLiteral = "r") -> tuple[ShardInfo, Commit, zarr.Group]:
    """`read_state` and the group it was read from: the record is read once (on an object store, one
    GET: no existence check first)."""
    path = storage_path(path)
    try:
        group = open_group(path, mode=mode)
    except FileNotFoundError:  # zarr's GroupNotFoundError is one
        raise ShardLayoutError(f"{path} is not a replay shard (no zarr.json)") from None
    attrs = shard_attrs(group)
    if attrs is None or "commit" not in attrs:
        raise ShardLayoutError(
            f"{path} is a Zarr group but not a (fully created) replay shard (no '{ATTR_KEY}.commit' attribute)"
        )
    if attrs.get("format") != FORMAT:
        raise ShardLayoutError(f"{path} has replay format {attrs.get('format')!r}, this code reads {FORMAT!r}")
    tasks = attrs.get("tasks")
    info = ShardInfo(
        int(attrs["obs_dim"]),
        int(attrs["action_dim"]),
        int(attrs["chunk_len"]),
        tuple(tasks) if tasks is not None else None,
    )
    return info, Commit.from_json(attrs["commit"]), group


def whole_episodes_per_task(path: Location) -> dict[int, int]:
    """task id -> live committed whole episodes of the shard at `path`: a stored piece counts when its
    last row ends the episode (terminated or truncated); the pieces a running episode is stored as
    before it ends do not. What a run's counters count, so the two can be compared."""
    _, c = read_state(path)
    g = open_group(path, mode="r")
    eg = group_at(g, EPISODE_GROUP)
    idx = {k: read_rows(array_at(eg, k), slice(c.first_episode, c.episodes)) for k in ("start", "length", "task")}
    if not len(idx["start"]):
        return {}
    last = idx["start"] + idx["length"] - 1
    ends = np.asarray(array_at(g, "terminated").get_coordinate_selection(last)) | np.asarray(
        array_at(g, "truncated").get_coordinate_selection(last)
    )
    out: dict[int, int] = {}
    for t, done in zip(idx["task"], ends, strict=False):
        if done:
            out[int(t)] = out.get(int(t), 0) + 1
    return out


def unreadable(path: Location) -> str | None:
    """Why an existing shard at `path` cannot be opened (metadata missing or not decoding), in one line;
    None if it opens or does not exist yet (a writer creates it)."""
    path = storage_path(path)
    if not path.exists() or not any(path.iterdir()):
        return None
    try:
        read_state(path)
    except Exception as exc:  # noqa: BLE001  any failure to read the record: this shard, named
        return f"cannot be opened ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    return None


def chunk_file(shard: Location, array: str, chunk: int, ndim: int) -> StoragePath:
    """Path of chunk `chunk` (along time) of a row array; Zarr v3 default key encoding."""
    return storage_path(shard).joinpath(array, "c", str(chunk), *(["0"] * (ndim - 1)))


def open_arrays(group: zarr.Group, names: Iterable[str], *, write: bool = False) -> dict[str, zarr.Array]:
    return {n: (array_at(group, n).with_config(WRITE_CONFIG) if write else array_at(group, n)) for n in names}


def shard_attrs(group: zarr.Group) -> dict[str, Any] | None:
    """The group's replay attribute (`ATTR_KEY`: format, dims, commit record), None if it has none;
    ShardLayoutError naming the store path if it is there but not a JSON object."""
    attrs = group.attrs.asdict().get(ATTR_KEY)
    if attrs is None:
        return None
    if not isinstance(attrs, dict):
        raise ShardLayoutError(
            f"{group.store_path}: attribute '{ATTR_KEY}' is a {type(attrs).__name__}, not a JSON object; "
            f"not a replay shard"
        )
    return attrs


def array_at(group: zarr.Group, name: str) -> zarr.Array:
    """The array `name` (a path below `group`, e.g. 'episodes/id') of a shard; ShardLayoutError naming the
    store path if there is none or it is a group."""
    try:
        node = group[name]
    except KeyError:
        raise ShardLayoutError(f"{group.store_path}/{name}: no such array (not a complete replay shard)") from None
    if not isinstance(node, zarr.Array):
        raise ShardLayoutError(f"{group.store_path}/{name} is a Zarr group where a replay shard has an array")
    return node


def group_at(group: zarr.Group, name: str) -> zarr.Group:
    """The group `name` (e.g. EPISODE_GROUP) of a shard; ShardLayoutError naming the store path if there is
    none or it is an array."""
    try:
        node = group[name]
    except KeyError:
        raise ShardLayoutError(f"{group.store_path}/{name}: no such group (not a complete replay shard)") from None
    if not isinstance(node, zarr.Group):
        raise ShardLayoutError(f"{group.store_path}/{name} is a Zarr array where a replay shard has a group")
    return node


def read_rows(arr: zarr.Array, rows: slice) -> np.ndarray:
    """`arr[rows]` as the NumPy array Zarr returns for it (its default buffer is NumPy's; no copy)."""
    return np.asarray(arr[rows])


def object_store_path(path: StoragePath) -> UPath:
    """`path` (from storage_path, on an object store) as the UPath it is; ShardLayoutError for a local path."""
    if isinstance(path, Path):
        raise ShardLayoutError(f"{path}: a file-system path where an object-store location is needed")
    return path


def fsync_paths(paths: Iterable[StoragePath], root: Path | None = None) -> None:
    """Flush files and their directories to disk (power loss; a killed process needs no fsync):
    every directory from a file's parent up to `root` (inclusive), so a directory created for a
    new chunk or a new task array is durable too, not only the file inside it."""
    dirs = set()
    root = Path(root) if root is not None else None
    for where in paths:
        p = local_path(where)
        if p.exists():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            d = p.parent
            dirs.add(d)
            while root is not None and d != root and root in d.parents:
                d = d.parent
                dirs.add(d)
    for d in sorted(dirs, key=lambda x: -len(x.parts)):  # deepest first: an entry is synced after its contents
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
