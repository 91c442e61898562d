"""Errors a replay shard raises; each names the shard (and chunk) it is about."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed.storage import StoragePath


class ReplayError(Exception):
    """Base class of every replay-store error."""


class WriterLockedError(ReplayError):
    """A second writer tried to open a shard that already has a live writer."""


class ShardLayoutError(ReplayError, ValueError):
    """The path is not a replay shard, or it was opened with settings it was not made with."""


class ChunkError(ReplayError):
    """A committed chunk file is missing or does not decode (checksum, codec)."""

    def __init__(self, shard: str | StoragePath, array: str, chunk: int, reason: str):
        self.shard, self.array, self.chunk, self.reason = str(shard), array, chunk, reason
        super().__init__(f"shard {self.shard}: chunk {chunk} of array '{array}' is {reason}")

    def __reduce__(self):  # picklable with its fields, so it crosses from a Ray actor as itself
        return (type(self), (self.shard, self.array, self.chunk, self.reason))


class ShardInconsistentError(ReplayError):
    """Committed data and its indexes disagree (found by verify_shard)."""

    def __init__(self, shard: str | StoragePath, detail: str):
        self.shard, self.detail = str(shard), detail
        super().__init__(f"shard {self.shard}: {detail}")

    def __reduce__(self):
        return (type(self), (self.shard, self.detail))


class NoWindowsError(ReplayError, ValueError):
    """A draw asked for windows the shard does not hold (none at all, or none of a task): the asker's
    counts are stale (the shard was restarted without its data, or evicted them): count again."""


class ChunkEvicted(ReplayError):
    """A reader raced the writer's FIFO eviction: refresh and draw again (not damage)."""
