"""The single-writer lock of a shard: an exclusive flock on `<shard>.writer.lock` beside it.

(Beside, not inside: plain Zarr warns about unknown files inside a group.)

The kernel drops a flock when its process dies (even by SIGKILL), so a crashed writer never
leaves a stale lock behind. flock is per open file, so a second writer in the same process is
refused too. (Not reliable on NFS; shards live on a node's local disk.)
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from distributed.replay.errors import WriterLockedError

LOCK_SUFFIX = ".writer.lock"


class WriterLock:
    """Holds the writer lock of one shard directory until `release()`."""

    def __init__(self, shard_dir: Path):
        shard_dir = Path(shard_dir)
        self.path = shard_dir.with_name(shard_dir.name + LOCK_SUFFIX)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_holder()
            os.close(self._fd)
            raise WriterLockedError(
                f"shard {shard_dir} already has a live writer ({holder}); a shard has exactly one "
                "writer: close it first or write to another shard") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                        "since": time.time()}).encode(), 0)

    def _read_holder(self) -> str:
        try:
            info = json.loads(os.pread(self._fd, 4096, 0) or b"{}")
            return f"pid {info.get('pid')} on {info.get('host')}"
        except (OSError, ValueError):
            return "holder unknown"

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
