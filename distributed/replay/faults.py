"""Fault injection for tests and bench/faults.py: a process stops itself with a real SIGKILL at a
named point of the shard commit protocol. Unset (every normal run), a point costs one comparison.

    LATENTFLEET_KILL_AT=<point>[:<n>]  die the n-th time (default 1) this process reaches <point>
    LATENTFLEET_KILL_CLAIM=<file>      only the first process to get there (it creates <file>
                                       exclusively and writes its pid); the others, e.g. the other
                                       shard actors of a job or a restarted actor, carry on
    LATENTFLEET_KILL_SIGNAL=STOP       freeze there instead, so a test can kill a whole job around
                                       the frozen process at that exact point

The settings are read when a KillSwitch is made (a ShardWriter makes one in its constructor).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal

# after the row chunks are written (before the index); after the index (before the commit record);
# the commit record's temp file written, not yet renamed; after the first evicted chunk is deleted;
# checkpoint-write: a checkpoint file written, not yet renamed (a test wraps the checkpoint writer)
POINTS = ("chunk-data", "index", "commit-record", "eviction", "checkpoint-write")
ENV_AT, ENV_CLAIM, ENV_SIGNAL = "LATENTFLEET_KILL_AT", "LATENTFLEET_KILL_CLAIM", "LATENTFLEET_KILL_SIGNAL"


class KillSwitch:
    """Armed from the environment (see the module docstring); `reached(point)` at each point."""

    def __init__(self, env=None):
        env = os.environ if env is None else env
        point, _, n = env.get(ENV_AT, "").partition(":")
        if point and point not in POINTS:
            raise ValueError(f"{ENV_AT}={env[ENV_AT]!r}: unknown point {point!r}; points are {POINTS}")
        self.point = point or None
        self.left = int(n or 1)
        self.claim = env.get(ENV_CLAIM) or None
        self.signal = signal.SIGSTOP if env.get(ENV_SIGNAL, "KILL").upper() == "STOP" else signal.SIGKILL

    def armed(self, point: str) -> bool:
        return self.point == point

    def reached(self, point: str) -> None:
        if self.point != point:
            return
        self.left -= 1
        if self.left > 0:
            return
        self.point = None
        if self.claim is not None:
            try:
                fd = os.open(self.claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:  # another process took this kill
                return
            os.write(fd, f"{os.getpid()}\n".encode())
            os.close(fd)
        os.kill(os.getpid(), self.signal)

    @contextlib.contextmanager
    def before_rename(self, point: str, target: pathlib.Path):
        """Inside: the rename of a temp file onto `target` (how Zarr's local store writes a file
        atomically) reaches `point` first, i.e. the new content is written but not yet in place."""
        if self.point != point:
            yield
            return
        real = pathlib.Path.replace
        watched = pathlib.Path(target)
        reached = self.reached

        # Path.replace's own signature (parameter names too: it replaces that method)
        def replace(self: pathlib.Path, target: str | os.PathLike[str]) -> pathlib.Path:
            if pathlib.Path(target) == watched:
                reached(point)
            return real(self, target)

        pathlib.Path.replace = replace
        try:
            yield
        finally:
            pathlib.Path.replace = real
