"""Sweeps over Hydra overrides of `configs/train.yaml`, run as Ray Tune trials.

Each trial is one full single-process training run (`distributed.loop.run`, backend=local) with its
own resources and its own run directory `<sweep>/runs/<slug>`, where the slug is derived from
the trial's overrides, so a re-run sweep finds it again. Resume rules, per run directory:
- `done.json` present: the trial finished; a resumed sweep reports it and never trains it again;
- a checkpoint but no `done.json` (killed, or failed and retried): the loop resumes from it;
- `attempts.jsonl`: one line per attempt that trained (start, elapsed, outcome).
Tune retries a failed trial up to `max_failures` times; what still fails is reported in the
table with its error. Every invocation is a new Tune experiment under `<sweep>/tune/attempt-N`
(so a changed trial list is fine); the run directories are the sweep's state.

Results: `<sweep>/results.csv`, `results.md`, `results.png` (final and best normalized score,
per-task final returns, wall time, env steps), and with wandb on, every trial joins the wandb
group `<name>` and a summary run logs the table.

`storage` is a path or an object-store URI (`storage=s3://bucket/sweeps`, distributed/storage.py):
trials write their run directories wherever Tune places them and the driver reads the markers
and metrics, so on a multi-node cluster it must be a URI or a file system every node mounts.
Tune's own experiment folders go there too (through fsspec, as a pyarrow file system).
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from distributed.storage import Location, StoragePath

DONE_FILE = "done.json"
ATTEMPTS_FILE = "attempts.jsonl"


@dataclass
class SweepConfig:
    """A sweep's options: a Hydra structured config (launch/sweep.py takes overrides of it).

        python launch/sweep.py name=sizes 'base=["task=walker-walk","steps=100000"]' \\
            '+grid.model_size=[1,5]' '+grid.planner.num_samples=[256,512]' 'seeds=[1,2,3]'
        python launch/sweep.py name=lr '+random.optim.lr={loguniform:[1e-4,1e-3]}' num_random=8

    Nested keys (`+grid.planner.num_samples=[..]` builds grid: {planner: {num_samples: [..]}})
    mean dotted override keys: construction flattens them, so `grid` and `random` are flat."""

    name: str = "sweep"
    storage: str = "runs/sweeps"  # the sweep lives in <storage>/<name>; a path or s3://bucket/prefix (multi-node:
    #                               a URI or a path every node sees; in a `ray job submit` job: ~/latentfleet-runs)
    base: list[str] = field(default_factory=list)  # train.yaml overrides for every trial: 'base=["task=mt30"]'
    grid: dict[str, Any] = field(default_factory=dict)  # key -> [values]: every combination
    random: dict[str, Any] = field(default_factory=dict)  # key -> {choice: [..]} | {uniform|loguniform|randint: [a, b]}
    num_random: int = 0  # random draws (each with every grid point); drawn from random_seed, so reproducible
    random_seed: int = 0
    seeds: list[int] = field(default_factory=lambda: [1])
    cpus_per_trial: float = 1.0  # Ray resources of one trial (fractions allowed)
    gpus_per_trial: float = 0.0
    max_failures: int = 1  # Tune retries of a failed trial (it resumes from its checkpoint)
    max_concurrent: int | None = None  # None: as many as the resources allow
    wandb_mode: str = "offline"  # for the trials (unless base overrides it) and the summary run
    wandb_project: str = "latentfleet"

    def __post_init__(self):
        self.grid = _flatten(dict(self.grid), leaf=lambda v: not isinstance(v, dict))
        self.random = _flatten(dict(self.random), leaf=lambda v: not isinstance(v, dict) or _is_draw(v))
        for key, spec in self.random.items():
            if not _is_draw(spec):
                raise ValueError(
                    f"random.{key} = {spec!r}; expected one of {{choice: [..]}}, {{uniform: [lo, hi]}}, "
                    f"{{loguniform: [lo, hi]}}, {{randint: [lo, hi]}}"
                )
        for key, vals in self.grid.items():
            if not isinstance(vals, (list, tuple)) or not vals:
                raise ValueError(f"grid.{key} = {vals!r}; expected a non-empty list of values")
        if not self.seeds:
            raise ValueError("seeds is empty: give at least one, e.g. seeds=[1]")

    @property
    def directory(self) -> StoragePath:
        """<storage>/<name>: an absolute Path, or an UPath for a URI."""
        from distributed.config import run_location
        from distributed.storage import is_remote, storage_path

        d = storage_path(run_location(self.storage)) / self.name
        return d if is_remote(d) else d.resolve()


def _is_draw(spec) -> bool:
    return isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in _DRAWS


def _flatten(d: dict, leaf, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if leaf(v):
            out[prefix + str(k)] = v
        else:
            out.update(_flatten(dict(v), leaf, f"{prefix}{k}."))
    return out


_DRAWS = {
    "choice": lambda rng, v: v[int(rng.integers(len(v)))],
    "uniform": lambda rng, v: float(rng.uniform(v[0], v[1])),
    "loguniform": lambda rng, v: float(math.exp(rng.uniform(math.log(v[0]), math.log(v[1])))),
    "randint": lambda rng, v: int(rng.integers(v[0], v[1] + 1)),
}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    return str(value)


def expand_trials(cfg: SweepConfig) -> list[dict]:
    """The sweep's trials, in a fixed order: [{slug, overrides, varied}] (varied: key -> value
    of the swept keys). The slug is readable plus a hash of all overrides, so it is stable."""
    rng = np.random.default_rng(cfg.random_seed)
    draws = (
        [
            {k: _DRAWS[next(iter(s))](rng, next(iter(s.values()))) for k, s in cfg.random.items()}
            for _ in range(cfg.num_random)
        ]
        if cfg.random and cfg.num_random
        else [{}]
    )
    keys = list(cfg.grid)
    trials, seen = [], set()
    for point in itertools.product(*(cfg.grid[k] for k in keys)):
        for draw in draws:
            for seed in cfg.seeds:
                varied = {**dict(zip(keys, point, strict=False)), **draw, "seed": seed}
                overrides = list(cfg.base) + [f"{k}={_fmt(v)}" for k, v in varied.items()]
                digest = hashlib.sha1("\n".join(overrides).encode()).hexdigest()[:8]
                readable = re.sub(r"[^A-Za-z0-9_.+-]", "_", "__".join(f"{k}-{_fmt(v)}" for k, v in varied.items()))
                slug = f"{readable[:80]}-{digest}"
                if slug not in seen:
                    seen.add(slug)
                    trials.append({"slug": slug, "overrides": overrides, "varied": varied})
    return trials


# ---- one trial (runs in a Ray worker) --------------------------------------------------------
def run_trial(config: dict) -> None:
    """Tune function trainable: train one trial unless its done marker says it finished."""
    from ray import tune

    from distributed.storage import append_text, is_remote, storage_path, write_bytes

    trial = config["trial"]
    run_dir = storage_path(trial["config"]["run_dir"])
    done = run_dir / DONE_FILE
    if done.exists():
        tune.report({**json.loads(done.read_text()), "skipped": True})
        return
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ["WANDB_RUN_GROUP"] = trial["group"]  # wandb.init(group=None) reads it
    from distributed.config import config_from_dict
    from distributed.loop import run

    if not is_remote(run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
    start, outcome = time.time(), "error"
    try:
        try:
            summary = run(config_from_dict(trial["config"]))
        except Exception as exc:  # a plain error crosses to the driver even if exc's type cannot be unpickled
            raise RuntimeError(f"{type(exc).__name__}: {exc}") from None
        outcome = "done"
    finally:
        if "wandb" in sys.modules:  # stop wandb's service now, not in an atexit hook Ray may cut short
            sys.modules["wandb"].teardown()
        append_text(
            run_dir / ATTEMPTS_FILE,
            json.dumps({"start": start, "elapsed": time.time() - start, "outcome": outcome, "pid": os.getpid()}) + "\n",
        )
    result = trial_result(run_dir)
    result.update(env_steps=summary["env_steps"], updates=summary["updates"])
    write_bytes(done, json.dumps(result, indent=1).encode())  # written last: its presence means the run finished
    tune.report({**result, "skipped": False})


def trial_result(run_dir: Location) -> dict:
    """Scores of one run directory from its metrics.jsonl and attempts: final and best score
    (normalized score when the tasks have one, else mean eval return), per-task final returns,
    env steps, wall time summed over attempts."""
    from distributed.run_log import read_metrics
    from distributed.storage import storage_path

    run_dir = storage_path(run_dir)
    evals = read_metrics(run_dir, "eval")
    normalized = evals and all(r.get("normalized_score") is not None for r in evals)
    key = "normalized_score" if normalized else "episode_return"
    scores = [r[key] for r in evals if r.get(key) is not None]
    attempts = (
        [json.loads(x) for x in (run_dir / ATTEMPTS_FILE).read_text().splitlines()]
        if (run_dir / ATTEMPTS_FILE).exists()
        else []
    )
    last = evals[-1] if evals else {}
    return {
        "score_kind": key,
        "final_score": scores[-1] if scores else None,
        "best_score": max(scores) if scores else None,
        **{k: v for k, v in last.items() if k.startswith("return/")},
        "env_steps": last.get("step"),
        "wall_s": round(sum(a["elapsed"] for a in attempts), 2),
        "attempts": len(attempts),
    }


def _trial_dirname(trial) -> str:
    return trial.config["trial"]["slug"][:100]


# ---- the sweep -----------------------------------------------------------------------------------
def sweep_trials(cfg: SweepConfig) -> list[dict]:
    """expand_trials with each trial's checked train config ("config") and wandb group; a bad
    override raises ConfigError here, before Ray or Tune start and before anything is written."""
    from distributed.config import ConfigError, compose
    from distributed.storage import StorageError, check_writable

    try:
        sweep_dir = cfg.directory
        check_writable(str(sweep_dir), "storage")  # a URI: the bucket exists and can be written
    except StorageError as exc:
        raise ConfigError(str(exc)) from None
    trials = expand_trials(cfg)
    base_wandb = [] if any(o.startswith("wandb_mode=") for o in cfg.base) else [f"wandb_mode={cfg.wandb_mode}"]
    for t in trials:
        overrides = [o for o in base_wandb + t["overrides"] + ["progress=false"] if not o.startswith("run_dir=")]
        run_dir = sweep_dir / "runs" / t["slug"]
        t["config"] = compose("train", overrides + [f"run_dir='{run_dir}'"]).to_dict()
        t["group"] = cfg.name
    return trials


def run_sweep(cfg: SweepConfig, *, trials: list[dict] | None = None, verbose: int = 0) -> dict:
    """Run (or resume) the sweep on the current Ray (initialised by the caller, or by Tune);
    `trials`: sweep_trials(cfg) if the caller has them already.

    Returns {"rows": table rows, "files": {csv, md, png}, "trained": [slugs trained now],
    "skipped": [slugs already done], "errors": {slug: message}}.
    """
    from ray import tune

    from distributed.storage import is_remote, storage_path

    sweep_dir = cfg.directory
    trials = sweep_trials(cfg) if trials is None else trials
    if not is_remote(sweep_dir):
        sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "trials.json").write_text(
        json.dumps([{k: t[k] for k in ("slug", "overrides", "varied")} for t in trials], indent=1)
    )
    already = {t["slug"] for t in trials if (storage_path(t["config"]["run_dir"]) / DONE_FILE).exists()}

    tune_dir = sweep_dir / "tune"
    attempt = len(list(tune_dir.glob("attempt-*"))) if tune_dir.exists() else 0
    errors: dict[str, str] = {}
    todo = [t for t in trials if t["slug"] not in already]
    if todo:  # finished trials are not even handed to Tune again
        trainable = tune.with_resources(run_trial, {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial})
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search(todo)},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=cfg.max_concurrent,
                trial_dirname_creator=_trial_dirname,
                trial_name_creator=_trial_dirname,
            ),
            run_config=tune.RunConfig(
                **_tune_storage(tune_dir),
                name=f"attempt-{attempt}",
                verbose=verbose,
                failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
            ),
        )
        for r in tuner.fit():
            if r.error is not None:
                cause = getattr(r.error, "cause", None) or r.error  # a RayTaskError wraps the trial's exception
                if r.config is None:
                    raise RuntimeError(f"Tune reported a failed trial without its config: {cause}")
                errors[r.config["trial"]["slug"]] = " ".join(str(cause).split())[:300]

    rows = []
    for t in trials:
        run_dir = storage_path(t["config"]["run_dir"])
        done = run_dir / DONE_FILE
        row = {"trial": t["slug"], **{k: _fmt(v) for k, v in t["varied"].items()}}
        if done.exists():
            row.update(status="done", **json.loads(done.read_text()))
        else:
            row.update(status="error" if t["slug"] in errors else "incomplete", **trial_result(run_dir))
            if t["slug"] in errors:
                row["error"] = errors[t["slug"]]
        rows.append(row)
    files = write_results(rows, sweep_dir, cfg)
    return {
        "rows": rows,
        "files": files,
        "errors": errors,
        "skipped": sorted(already),
        "trained": [t["slug"] for t in todo],
    }


def _tune_storage(tune_dir) -> dict:
    """Tune's storage arguments: a path, or for a URI the same fsspec file system the rest of the
    run uses (endpoint and credentials from the environment), handed to Tune as a pyarrow one."""
    from distributed.storage import is_remote

    if not is_remote(tune_dir):
        return {"storage_path": str(tune_dir)}
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return {"storage_path": tune_dir.path, "storage_filesystem": PyFileSystem(FSSpecHandler(tune_dir.fs))}


def write_results(rows: list[dict], sweep_dir: StoragePath, cfg: SweepConfig) -> dict:
    """results.csv, results.md and results.png in sweep_dir; the table to wandb when it is on."""
    fixed = ["status", "score_kind", "final_score", "best_score", "env_steps", "updates", "wall_s", "attempts"]
    varied = [
        k for k in (rows[0] if rows else []) if k not in ["trial", *fixed, "error"] and not k.startswith("return/")
    ]
    tasks = sorted({k for r in rows for k in r if k.startswith("return/")})
    columns = ["trial", *varied, *fixed, *tasks] + (["error"] if any("error" in r for r in rows) else [])
    csv_path, md_path = sweep_dir / "results.csv", sweep_dir / "results.md"
    table = io.StringIO(newline="")  # in memory: one write, also to an object store
    w = csv.DictWriter(table, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    csv_path.write_text(table.getvalue(), newline="")

    def cell(v):
        return "" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v).replace("|", "/"))

    lines = [
        f"# sweep {cfg.name}",
        "",
        f"{len(rows)} trials, {sum(r['status'] == 'done' for r in rows)} done; "
        f"base overrides: `{' '.join(cfg.base) or '-'}`",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]

    def final_score(r: dict) -> float:
        score = r.get("final_score")
        return -math.inf if score is None else score

    ranked = sorted(rows, key=lambda r: -final_score(r))
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in ranked]
    md_path.write_text("\n".join(lines) + "\n")
    labels = [" ".join(f"{k.rsplit('.', 1)[-1]}={r.get(k)}" for k in varied) or r["trial"] for r in rows]
    png = _plot(rows, labels, sweep_dir / "results.png")
    if cfg.wandb_mode != "disabled" and rows:
        _wandb_table(rows, columns, sweep_dir, cfg)
    return {"csv": csv_path, "md": md_path, "png": png}


def _plot(rows: list[dict], labels: list[str], path: StoragePath) -> StoragePath | None:
    """Final and best score per trial (bars) and each trial's eval curve."""
    from distributed.run_log import read_metrics, saved_figure

    if not rows:
        return None
    x = np.arange(len(rows))
    with saved_figure(path, 1, 2, figsize=(13, 4.5), dpi=110) as (_, (ax0, ax1)):
        for offset, kind in ((-0.2, "final"), (0.2, "best")):
            ax0.bar(
                x + offset,
                [np.nan if r.get(f"{kind}_score") is None else r[f"{kind}_score"] for r in rows],
                0.4,
                label=kind,
            )
        ax0.set_xticks(x, [s[:40] for s in labels], rotation=60, ha="right", fontsize=6)
        ax0.legend()
        for r, label in zip(rows, labels, strict=False):
            evals = read_metrics(r.get("run_dir") or path.parent / "runs" / r["trial"], "eval")
            key = r.get("score_kind") or "episode_return"
            pts = [(e["step"], e[key]) for e in evals if e.get(key) is not None]
            if pts:
                ax1.plot(*zip(*pts, strict=False), marker="o", ms=3, label=label[:40])
        ax1.set_xlabel("env steps")
        if ax1.lines and len(rows) <= 12:
            ax1.legend(fontsize=6)
        for ax in (ax0, ax1):
            ax.set_ylabel(rows[0].get("score_kind") or "score")
            ax.grid(alpha=0.3)
    return path


def _wandb_table(rows: list[dict], columns: list[str], sweep_dir: StoragePath, cfg: SweepConfig) -> None:
    import wandb

    from distributed.run_log import wandb_dir, wandb_mode_of

    run = wandb.init(
        project=cfg.wandb_project,
        group=cfg.name,
        name=f"{cfg.name}-summary",
        job_type="sweep-summary",
        dir=str(wandb_dir(sweep_dir)),
        mode=wandb_mode_of(cfg.wandb_mode),
        reinit="finish_previous",
    )
    run.log({"results": wandb.Table(columns=list(columns), data=[[r.get(c) for c in columns] for r in rows])})
    run.finish()
