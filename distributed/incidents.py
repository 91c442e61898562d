"""What a run survived, as the user reads it: one line each on the console when it happens, the same
lines in summary.json (`incidents`) and eval.md, and the full traceback (where there is one) in
`<run_dir>/errors.log`, never on the console.

An incident is a plain dict: `kind` (e.g. "replay_quarantine", "shard_set_aside", "runner_restart"),
`line` (one line: what failed, where, what was done about it) and the kind's own fields. Each is
reported once, by its `key` (the same damage polled twice is one incident)."""

from __future__ import annotations

import json
import sys
import time
import traceback

from distributed.storage import Location, append_text, is_remote, storage_path

ERRORS_LOG = "errors.log"


# what Ray's actor errors say, in a few words (their messages run to hundreds of characters of ids)
RAY_REASONS = (
    ("its node has died", "its node died"),
    ("temporarily unavailable", "unavailable while Ray restarts it"),
    ("killed by `ray.kill`", "killed"),
    ("died unexpectedly", "its process died"),
    ("creation task", "its constructor failed"),
)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """`Type: message` on one line (Ray's wrapped errors name their cause; an actor's death says why in a few
    words, the full message goes to errors.log with the traceback; colour codes dropped)."""
    cause = getattr(exc, "cause", None) if hasattr(exc, "traceback_str") else None  # a RayTaskError
    exc = cause if isinstance(cause, BaseException) else exc
    text = " ".join(str(exc).split())
    if type(exc).__module__.startswith("ray"):
        why = next((short for phrase, short in RAY_REASONS if phrase in text), None)
        if why is not None:
            return f"{type(exc).__name__}: {why}"
    for code in ("\x1b[0m", "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[36m", "\x1b[1m"):
        text = text.replace(code, "")
    text = "".join(c for c in text if c.isprintable())
    return f"{type(exc).__name__}: {text}"[:limit]


class Incidents:
    """The run's incidents in the order they happened; `report` prints each new one once."""

    def __init__(self, run_dir: Location, stream=None):
        self.run_dir = storage_path(run_dir)  # a Path, or an UPath on an object store
        self.stream = stream or sys.stderr
        self.items: list[dict] = []
        self._keys: set = set()

    def report(self, kind: str, line: str, *, key=None, exc: BaseException | None = None, **fields) -> bool:
        """Record and print one incident unless `key` was reported already; `exc`'s traceback goes to
        errors.log. Returns whether it was new."""
        key = (kind, line) if key is None else (kind, key)
        if key in self._keys:
            return False
        self._keys.add(key)
        self.items.append({"kind": kind, "line": line, "time": round(time.time(), 3), **fields})
        print(f"latentfleet: {line}", file=self.stream, flush=True)
        if exc is not None:
            self.log_traceback(line, exc)
        return True

    def log_traceback(self, line: str, exc: BaseException) -> None:
        if not is_remote(self.run_dir):
            self.run_dir.mkdir(parents=True, exist_ok=True)
        append_text(
            self.run_dir / ERRORS_LOG,
            f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n" + "".join(traceback.format_exception(exc)),
        )

    def lines(self, kind: str | None = None) -> list[str]:
        return [i["line"] for i in self.items if kind is None or i["kind"] == kind]

    def details(self) -> list[dict]:
        """Every incident with its fields (kind, time, node, slot, shard, updates or episodes lost, ...), as JSON
        values: summary.json's `incident_details`, beside the one-line `incidents`."""
        return json.loads(json.dumps(self.items, default=str))

    def of(self, kind: str) -> list[dict]:
        return [i for i in self.items if i["kind"] == kind]
