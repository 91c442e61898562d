"""The Zarr replay store: sharded, single-writer, crash-safe; usable without Ray.

Public API (see README.md for the on-disk layout):
    ShardWriter, ShardReader, MultiShardSampler, verify_shard, ReplayShardActor,
    errors: ReplayError, WriterLockedError, ShardLayoutError, ChunkError, ShardInconsistentError.
Names resolve lazily so a writer-only process never imports torch (via the batch contract).
"""

from __future__ import annotations

import importlib

_WHERE = {
    "ShardWriter": "writer",
    "ShardReader": "reader",
    "MultiShardSampler": "multi",
    "verify_shard": "verify",
    "VerifyReport": "verify",
    "ReplayShardActor": "actor",
    "ReplayError": "errors",
    "WriterLockedError": "errors",
    "ShardLayoutError": "errors",
    "ChunkError": "errors",
    "ShardInconsistentError": "errors",
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'distributed.replay' has no attribute {name!r}")
    return getattr(importlib.import_module(f"distributed.replay.{_WHERE[name]}"), name)
