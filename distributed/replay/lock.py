"""The single-writer rule of a shard. On a file system: an exclusive flock on `<shard>.writer.lock`
beside it (`WriterLock`). On an object store, where a lock file cannot be trusted (no flock, and
a dead writer's file never goes away): a lease object with an expiry, taken and renewed only by
conditional writes (`WriterLease`).

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
import threading
import time
import uuid
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
            holder = self._read_holder(self._fd)
            os.close(self._fd)
            raise WriterLockedError(
                f"shard {shard_dir} already has a live writer ({holder}); a shard has exactly one "
                "writer: close it first or write to another shard"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(
            self._fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode(), 0
        )

    @staticmethod
    def _read_holder(fd: int) -> str:
        """Who holds the lock, from the lock file open at `fd`."""
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"pid {info.get('pid')} on {info.get('host')}"
        except (OSError, ValueError):
            return "holder unknown"

    def check(self) -> None:
        """A flock cannot be lost while the process lives: nothing to check."""

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


LEASE_SUFFIX = ".writer.lease"
LEASE_ENV = "LATENTFLEET_LEASE_S"  # tests and bench/faults.py shorten the lease; runs keep the default
DEFAULT_LEASE_S = 30.0


class WriterLease:
    """The writer's lease on one shard on an object store: `<shard>.writer.lease` beside it, JSON
    {owner, host, pid, expires} (expires: the holder's wall clock + `lease_s`).

    Taken by a conditional PUT: If-None-Match: * when there is no lease object, If-Match: <its ETag>
    when the lease there has expired, so of two contenders exactly one wins. Renewed (If-Match on
    our own ETag) by a thread every lease_s / 3 while the writer lives; a writer killed or frozen
    stops renewing and its lease runs out, so a restarted writer waits at most `lease_s` (it polls
    until then, and is refused if the holder keeps renewing). `check()`, called before every write
    of chunk data and of the commit record, raises if the lease was lost (a stalled writer whose
    lease expired and was taken over): that writer writes nothing more. Clocks of the nodes must
    agree to well within lease_s (NTP)."""

    def __init__(self, shard, *, lease_s: float | None = None, wait_s: float | None = None):
        self.lease_s = float(lease_s or os.environ.get(LEASE_ENV) or DEFAULT_LEASE_S)
        self.path = shard.with_name(shard.name + LEASE_SUFFIX)
        self.fs, self.key = self.path.fs, self.path.path
        self.owner = uuid.uuid4().hex
        self.lost: str | None = None
        self._etag: str | None = None
        self._expires = 0.0  # when our lease runs out (our clock), as last written
        self._mutex = threading.Lock()
        deadline = time.time() + (self.lease_s + 5 if wait_s is None else wait_s)
        while not self._try_take():
            if time.time() > deadline:
                raise WriterLockedError(
                    f"shard {shard} already has a live writer ({self._holder}); a shard has exactly one writer "
                    f"(a lease renewed every {self.lease_s / 3:.0f} s): close it first or write to another shard"
                )
            time.sleep(min(1.0, self.lease_s / 10))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, daemon=True, name="shard-lease")
        self._thread.start()

    def _body(self, expires: float) -> bytes:
        return json.dumps(
            {"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(), "expires": expires}
        ).encode()

    def _put(self, expires: float, **condition) -> bool:
        """One conditional PUT of our lease; False if the condition failed (someone else's lease)."""
        try:
            out = self.fs.pipe_file(self.key, self._body(expires), **condition)
        except (FileExistsError, OSError) as exc:
            if (
                isinstance(exc, FileExistsError)
                or "pre-condition" in str(exc).lower()
                or "precondition" in str(exc).lower()
            ):
                return False
            raise
        self._etag = (out or {}).get("ETag") or self.fs.info(self.key)["ETag"]
        self._expires = expires
        return True

    def _try_take(self) -> bool:
        try:
            etag = self.fs.info(self.key)["ETag"]
            held = json.loads(self.fs.cat_file(self.key))
        except FileNotFoundError:
            self._holder = "nobody"
            return self._put(time.time() + self.lease_s, mode="create")
        self._holder = f"pid {held.get('pid')} on {held.get('host')}, lease until {time.ctime(held.get('expires', 0))}"
        if held.get("expires", 0) > time.time():
            return False
        return self._put(time.time() + self.lease_s, IfMatch=etag)

    def _renew(self) -> None:
        with self._mutex:
            if self.lost is None and not self._put(time.time() + self.lease_s, IfMatch=self._etag):
                self.lost = f"the writer lease of {self.path} was taken over (this writer stalled past its expiry)"

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self._renew()
            except OSError:  # the store unreachable for a moment: the next round tries again
                pass

    def check(self) -> None:
        """Raise WriterLockedError if this writer no longer holds the lease. No request while more than
        half the lease is left since our last renewal (no other writer can take it before it expires,
        and the renewing thread keeps it above two thirds); else it is renewed first."""
        with self._mutex:
            fresh = self.lost is None and time.time() < self._expires - self.lease_s / 2
        if not fresh:
            self._renew()
        if self.lost is not None:
            raise WriterLockedError(self.lost)

    def release(self) -> None:
        """Stop renewing and mark the lease expired (If-Match: only if it is still ours), so the next
        writer takes it at once."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        with self._mutex:
            if self.lost is None:
                self._put(0.0, IfMatch=self._etag)
