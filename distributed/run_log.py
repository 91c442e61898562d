"""One logging path for every run: `metrics.jsonl` + PNG plots in the run directory, and
wandb (offline by default, never needing a network).

The run directory may be an object-store URI (distributed/storage.py). An object cannot be
appended to, so there `metrics.jsonl` is kept in a local file and uploaded whole at most every
`upload_every_s` seconds and at close (a killed driver loses at most that much of the log; a
resumed run starts from the uploaded copy). wandb writes only to a file system: its offline
files then stay on the driver's disk, under ~/.cache/latentfleet/wandb/ (README says so)."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from distributed.storage import Location, StoragePath, is_remote, local_path, storage_path

WandbMode = Literal["online", "offline", "disabled", "shared"]
_WANDB_MODES: tuple[WandbMode, ...] = ("online", "offline", "disabled", "shared")


def wandb_mode_of(mode: str) -> WandbMode:
    """`mode` (a config's string) as one of wandb's modes; ValueError naming them for another."""
    for m in _WANDB_MODES:
        if mode == m:
            return m
    raise ValueError(f"wandb_mode must be one of {'|'.join(_WANDB_MODES)}, got {mode!r}")


class RunLogger:
    def __init__(
        self,
        run_dir: Location,
        config: dict,
        *,
        wandb_mode: str = "offline",
        project: str = "latentfleet",
        group: str | None = None,
        name: str | None = None,
        upload_every_s: float = 10.0,
    ):
        self.run_dir = storage_path(run_dir)
        self.remote = is_remote(self.run_dir)
        self.upload_every_s, self._uploaded = upload_every_s, time.monotonic()
        if self.remote:
            self._stage = Path(tempfile.mkdtemp(prefix="latentfleet-log-"))
            self.path = self._stage / "metrics.jsonl"
            if (self.run_dir / "metrics.jsonl").exists():  # a resumed run goes on appending to its log
                self.path.write_bytes((self.run_dir / "metrics.jsonl").read_bytes())
        else:
            local = local_path(self.run_dir)
            local.mkdir(parents=True, exist_ok=True)
            self.path = local / "metrics.jsonl"
        self.start = time.time()
        self._wandb = None
        if wandb_mode != "disabled":
            import wandb

            os.environ.setdefault("WANDB_SILENT", "true")
            self._wandb = wandb.init(
                project=project,
                group=group,
                name=name or self.run_dir.name,
                config=config,
                dir=str(wandb_dir(self.run_dir)),
                mode=wandb_mode_of(wandb_mode),
                resume="allow",
                id=_wandb_id(self.run_dir),
                reinit="finish_previous",
            )

    def log(self, step: int, metrics: dict, kind: str = "train") -> None:
        """Append one record {kind, step, time, **metrics} (non-finite floats become null)."""
        row = {"kind": kind, "step": int(step), "time": round(time.time() - self.start, 3)}
        row.update({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()})
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.remote and (kind == "summary" or time.monotonic() - self._uploaded >= self.upload_every_s):
            self.upload()
        if self._wandb is not None:
            flat = {f"{kind}/{k}": v for k, v in row.items() if isinstance(v, (int, float)) and k != "step"}
            self._wandb.log(flat, step=int(step))

    def upload(self) -> None:
        """Object-store run directory: put the whole local metrics.jsonl (one PUT replaces it)."""
        if self.remote:
            (self.run_dir / "metrics.jsonl").write_bytes(self.path.read_bytes())
            self._uploaded = time.monotonic()

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
        if self.remote and self.path.exists():
            self.upload()
            shutil.rmtree(self._stage, ignore_errors=True)
            self.remote = False  # closed: nothing more to upload


def wandb_dir(run_dir: StoragePath) -> Path:
    """Where wandb writes: the run directory, or (wandb cannot write to an object store) a local
    folder named after the URI, ~/.cache/latentfleet/wandb/<bucket-prefix>-<hash>."""
    if not is_remote(run_dir):
        return local_path(run_dir)
    text = str(run_dir)
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in text.split("://", 1)[1])[-60:]
    d = Path.home() / ".cache" / "latentfleet" / "wandb" / f"{slug}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def finished(run_dir: Location) -> bool:
    """Whether the run ended by finishing its steps: summary.json is there and does not say it failed."""
    path = storage_path(run_dir) / "summary.json"
    try:
        return path.exists() and "failed" not in json.loads(path.read_text())
    except json.JSONDecodeError:
        return False


def read_metrics(run_dir: Location, kind: str | None = None) -> list[dict]:
    path = storage_path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
        if kind is None or row.get("kind") == kind:
            rows.append(row)
    return rows


@contextmanager
def saved_figure(
    path: Location, *grid: int, dpi: int = 100, bbox: str | None = None, **subplots: Any
) -> Iterator[tuple[Any, Any]]:
    """`with saved_figure(path, 1, 2, figsize=(11, 4)) as (fig, axes):` a matplotlib figure (Agg: no
    display needed) that is laid out tight, written to `path` and closed when the block ends;
    `bbox="tight"` crops it instead (many long labels, where tight_layout warns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*grid, **subplots)
    try:
        yield fig, axes
        if bbox is None:
            fig.tight_layout()
        if is_remote(path):  # matplotlib writes to files: render in memory, then one object
            buf = io.BytesIO()
            fig.savefig(buf, dpi=dpi, bbox_inches=bbox, format=Path(str(path)).suffix.lstrip(".") or "png")
            storage_path(path).write_bytes(buf.getvalue())
        else:  # an UPath is remote, as storage_path makes them
            fig.savefig(path if isinstance(path, (str, os.PathLike)) else local_path(path), dpi=dpi, bbox_inches=bbox)
    finally:
        plt.close(fig)


def plot_learning_curves(run_dir: Location, out: str = "learning_curve.png") -> StoragePath | None:
    """Eval return (and normalized score when present) against env steps, per task."""
    rows = read_metrics(run_dir, "eval")
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    tasks = sorted({k[len("return/") :] for r in rows for k in r if k.startswith("return/")})
    path = storage_path(run_dir) / out
    with saved_figure(
        path, 1, 2 if any("normalized_score" in r for r in rows) else 1, figsize=(11, 4), squeeze=False
    ) as (_, axes):
        ax = axes[0, 0]
        for t in tasks:
            ax.plot(steps, [r.get(f"return/{t}") for r in rows], marker="o", label=t)
        ax.set_xlabel("env steps")
        ax.set_ylabel("eval episode return")
        if len(tasks) <= 12:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        if axes.shape[1] > 1:
            axes[0, 1].plot(steps, [r.get("normalized_score") for r in rows], marker="o", color="k")
            axes[0, 1].set_xlabel("env steps")
            axes[0, 1].set_ylabel("normalized score")
            axes[0, 1].grid(alpha=0.3)
    return path


def _wandb_id(run_dir: StoragePath) -> str:
    """A stable wandb run id per run directory so a resumed run continues the same wandb run."""
    path = run_dir / ".wandb_id"
    if path.exists():
        return path.read_text().strip()
    import uuid

    rid = uuid.uuid4().hex[:12]
    path.write_text(rid)
    return rid
