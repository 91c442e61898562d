"""One table and one plot over several run directories: ours (launch/train.py, launch/mt80.py)
and RLlib baselines (launch/baseline.py) alike, from their metrics.jsonl "eval" rows.

Per run: final evaluation (mean return over tasks, normalized score, return per task), best mean
return, env steps, wall-clock seconds and env steps per second. Wall-clock is the run's own
`time` column (seconds since its start, set-up and evaluations included), summed over attempts
when a run was resumed (its clock restarts). The plot has two panels: mean eval return against
env steps, and against wall-clock seconds.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from distributed.run_log import read_metrics

COLUMNS = [
    "run",
    "algorithm",
    "task",
    "env_steps",
    "wall_s",
    "env_steps_per_s",
    "final_return",
    "best_return",
    "normalized_score",
    "evals",
]


def wall_clock(rows: list[dict]) -> list[float]:
    """Each row's wall-clock since the run's first start: a `time` that goes back means a resumed
    attempt whose clock restarted, so the previous attempt's last time is carried over."""
    out, offset, prev = [], 0.0, 0.0
    for r in rows:
        t = float(r.get("time") or 0.0)
        if t < prev:
            offset += prev
        prev = t
        out.append(offset + t)
    return out


def describe_run(run_dir: str | Path) -> dict:
    """What kind of run a directory holds: {"algorithm", "task"} from its run.json."""
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    if meta.get("kind") == "baseline":
        return {"algorithm": f"RLlib {meta['algo']}", "task": meta.get("task")}
    size = meta.get("model_size")
    return {
        "algorithm": "latentfleet" + (f" ({size})" if size else ""),
        "task": meta.get("task") or meta.get("task_set"),
    }


def load_run(run_dir: str | Path, label: str | None = None) -> dict:
    """One run's curve and final numbers; a ValueError when it has no evaluation yet."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    if not rows:
        raise ValueError(f"{run_dir}: no metrics.jsonl rows (is it a run directory?)")
    clock = dict(zip(map(id, rows), wall_clock(rows), strict=False))
    evals = [r for r in rows if r.get("kind") == "eval"]
    if not evals:
        raise ValueError(f"{run_dir}: no evaluation rows yet")
    curve = [
        {
            "step": r["step"],
            "wall_s": clock[id(r)],
            "return": r["episode_return"],
            "normalized_score": r.get("normalized_score"),
        }
        for r in evals
    ]
    final, wall = evals[-1], max(clock.values())
    steps = max(r["step"] for r in rows)
    return {
        "run": label or run_dir.name,
        "dir": str(run_dir),
        **describe_run(run_dir),
        "env_steps": steps,
        "wall_s": round(wall, 1),
        "env_steps_per_s": round(steps / wall, 2) if wall else None,
        "final_return": final["episode_return"],
        "best_return": max(c["return"] for c in curve),
        "normalized_score": final.get("normalized_score"),
        "evals": len(evals),
        "tasks": {k[len("return/") :]: v for k, v in final.items() if k.startswith("return/")},
        "curve": curve,
    }


def compare_runs(
    run_dirs: Sequence[str | Path], out_dir: str | Path, labels: list[str] | None = None, title: str | None = None
) -> dict:
    """comparison.md, comparison.csv and comparison.png in `out_dir`; returns {"runs", "files"}."""
    if not run_dirs:
        raise ValueError("compare: give at least one run directory (runs=[dirA,dirB])")
    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(f"compare: {len(labels)} labels for {len(run_dirs)} runs")
    runs = [load_run(d, labels[i] if labels else None) for i, d in enumerate(run_dirs)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = sorted({t for r in runs for t in r["tasks"]})
    header = COLUMNS + [f"return/{t}" for t in tasks]
    table = [[r[c] for c in COLUMNS] + [r["tasks"].get(t) for t in tasks] for r in runs]
    with open(out_dir / "comparison.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(table)

    def cell(v):
        return "" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)

    lines = [
        f"# {title or 'Comparison'}",
        "",
        "Final evaluation of each run (our evaluator: same tasks, seeds and episodes); wall-clock "
        "includes set-up and evaluations.",
        "",
        "| " + " | ".join(header) + " |",
        "|---|---|---|" + "---:|" * (len(header) - 3),
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table]
    lines += ["", "Run directories:", ""] + [f"- {r['run']}: `{r['dir']}`" for r in runs]
    (out_dir / "comparison.md").write_text("\n".join(lines) + "\n")
    png = plot_comparison(runs, out_dir / "comparison.png", title)
    return {"runs": runs, "files": {"md": out_dir / "comparison.md", "csv": out_dir / "comparison.csv", "png": png}}


def plot_comparison(runs: list[dict], path: Path, title: str | None = None) -> Path:
    from distributed.run_log import saved_figure

    with saved_figure(path, 1, 2, figsize=(12, 4.5), dpi=110) as (fig, axes):
        for r in runs:
            label = f"{r['run']} ({r['algorithm']})"
            for ax, x in zip(axes, ("step", "wall_s"), strict=False):
                ax.plot([c[x] for c in r["curve"]], [c["return"] for c in r["curve"]], marker="o", ms=3, label=label)
        for ax, xlabel in zip(axes, ("env steps", "wall-clock seconds"), strict=False):
            ax.set_xlabel(xlabel)
            ax.set_ylabel("eval return (mean over tasks)")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        if title:
            fig.suptitle(title)
    return path
