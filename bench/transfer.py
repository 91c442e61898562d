"""The transfer protocol: zero-shot and few-shot transfer to held-out bodies, per split, over seeds.

    python bench/transfer.py [splits=[cartpole-length,swingup-new-bodies,cup-morph]] [seeds=[1,2,3]] \
        [steps_per_task=2000] [parallel=1] [results=bench/results]

For every split (envs/data/splits.json) and training seed, three models are trained on the split's
training tasks only (launch/train.py task=split:<name>), one per task conditioning:
`descriptor+table`, `language+table` and `descriptor+language+table`. Then launch/transfer.py
measures, on every held-out task, with `episodes` evaluation episodes per cell:
  - zero-shot: the nearest training task's embedding and the mean embedding (both from the
    descriptor+language+table model's table), and each model's feature map: descriptor, language,
    descriptor+language;
  - the in-distribution reference (the model on the nearest training body) and a random policy;
  - few-shot, on the split's `fewshot` held-out tasks: finetuning the descriptor+language model's new
    task embedding for K env steps, evaluated at every K of `finetune_k`, against a fresh
    single-task model trained from scratch for the same K.
Per split it writes <results>/transfer_<split>.md (commands, seeds, wall time, the table: mean and 95%
bootstrap interval over seeds), transfer_<split>.csv (every seed's cells) and transfer_<split>.png.
Run directories go to <out>/<split>/s<seed>/...; a re-run skips what has finished (it resumes), and a
report is written after every seed, so a bench stopped early still reports the seeds it finished.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REPO = Path(__file__).resolve().parents[1]
CONDITIONINGS = ("descriptor+language+table", "descriptor+table", "language+table")  # the first is the base
OPTION = {"descriptor+table": "both"}  # model.task_conditioning's name for it
ZERO_SHOT = ("nearest", "mean", "descriptor", "language", "descriptor+language")


@dataclass
class TransferBench:
    out: str = "runs/bench-transfer"  # run directories (replay stores: not for the repository)
    results: str = "bench/results"  # transfer_<split>.md / .csv / .png
    splits: list[str] = field(default_factory=lambda: ["cartpole-length", "swingup-new-bodies", "cup-morph"])
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    # held-out tasks finetuned per split (all held-out tasks of a split not listed get zero-shot only): few-shot
    # runs cost K env steps each, twice (finetune and scratch), so one task per split fits this machine
    fewshot: dict[str, list[str]] = field(
        default_factory=lambda: {
            "cartpole-length": ["cartpole-swingup@length=1.7"],
            "swingup-new-bodies": ["cartpole-two-poles"],
            "cup-morph": ["cup-catch@length=1.3"],
        }
    )
    steps_per_task: int = 2000  # training env steps per training task
    seed_steps_per_task: int = 250
    model_size: str = "tiny"
    batch_size: int = 64
    utd: float = 0.5
    planner: list[str] = field(
        default_factory=lambda: ["num_samples=64", "num_elites=8", "num_pi_trajs=8", "iterations=2"]
    )
    # rows planned in one pass: a tiny model is call-bound on CPU, and an evaluation plans 10 episodes x held-out
    # tasks at once (the CPU default of 2 rows per pass made that 15 passes per step); results do not depend on it
    rows_per_pass: int = 32
    episodes: int = 10  # evaluation episodes per cell
    finetune_k: list[int] = field(default_factory=lambda: [1000, 2000, 5000])
    parallel: int = 1  # runs at once, one core each
    bootstrap: int = 10000


def _split(name: str):
    from envs.task_set import load_split

    return load_split(name)


def _train_cmd(b: TransferBench, split: str, seed: int, cond: str, run_dir: Path) -> list[str]:
    n = len(_split(split).train)
    return [
        sys.executable,
        str(REPO / "launch/train.py"),
        f"task=split:{split}",
        f"model.task_conditioning={OPTION.get(cond, cond)}",
        f"model_size={b.model_size}",
        f"steps={b.steps_per_task * n}",
        f"seed_steps={b.seed_steps_per_task * n}",
        f"batch_size={b.batch_size}",
        f"utd={b.utd}",
        f"seed={seed}",
        f"eval_freq={b.steps_per_task * n}",
        "eval_episodes=2",
        "diagnostics=false",
        "wandb_mode=disabled",
        "progress=false",
        f"run_dir={run_dir}",
        *(f"planner.{p}" for p in b.planner),
        f"planner.rows_per_pass={b.rows_per_pass}",
    ]


def _transfer_cmd(
    b: TransferBench, split: str, seed: int, runs: dict[str, Path], out: Path, fewshot: list[str]
) -> list[str]:
    base, *others = [runs[c] for c in CONDITIONINGS]
    cmd = [
        sys.executable,
        str(REPO / "launch/transfer.py"),
        f"checkpoint={base}",
        f"split={split}",
        f"compare_checkpoints=[{','.join(str(o) for o in others)}]",
        f"episodes={b.episodes}",
        f"seed={seed}",
        f"utd={b.utd}",
        "wandb_mode=disabled",
        "progress=false",
        f"out_dir={out}",
        f"planner.rows_per_pass={b.rows_per_pass}",
    ]
    if not fewshot:
        return cmd + ["finetune_steps=0"]
    ks = sorted(b.finetune_k)
    return cmd + [
        f"finetune_steps={ks[-1]}",
        f"finetune_evals=[{','.join(map(str, ks[:-1]))}]",
        "finetune_inits=[descriptor+language]",
        "held_out=[" + ",".join(f'"{t}"' for t in fewshot) + "]",
    ]


def _run_dirs(b: TransferBench, split: str, seed: int) -> dict[str, Path]:
    root = Path(b.out) / split / f"s{seed}"
    return {c: root / c.replace("+", "-") for c in CONDITIONINGS}


def main(argv: list[str]) -> None:
    from bench.common import run_jobs
    from launch.common import options

    b = options(TransferBench, argv)
    for split in b.splits:
        held = _split(split).held_out
        bad = [t for t in b.fewshot.get(split, []) if t not in held]
        if bad:
            raise SystemExit(f"error: fewshot tasks {bad} are not held-out tasks of split {split!r}: {held}")
    out = Path(b.out)
    out.mkdir(parents=True, exist_ok=True)
    commands: list[str] = []
    for seed in b.seeds:  # seed by seed: a report after each, so a stopped bench still reports
        train, transfer = [], []
        for split in b.splits:
            runs = _run_dirs(b, split, seed)
            train += [
                (f"{split}-s{seed}-{c.replace('+', '-')}", _train_cmd(b, split, seed, c, d), d) for c, d in runs.items()
            ]
            zs, fs = runs[CONDITIONINGS[0]].parent / "zero-shot", runs[CONDITIONINGS[0]].parent / "few-shot"
            transfer.append((f"{split}-s{seed}-zero-shot", _transfer_cmd(b, split, seed, runs, zs, []), zs))
            if b.fewshot.get(split):
                transfer.append(
                    (f"{split}-s{seed}-few-shot", _transfer_cmd(b, split, seed, runs, fs, b.fewshot[split]), fs)
                )
        commands += [
            " ".join(c[1:]).replace(str(REPO) + "/", "") for _, c, _ in train + transfer
        ]  # repository-relative
        run_jobs(train, out, b.parallel, REPO)
        # zero-shot runs first: a bench stopped mid-seed still reports that seed's zero-shot cells
        todo = sorted((j for j in transfer if not (j[2] / "transfer.json").exists()), key=lambda j: "few-shot" in j[0])
        walls = run_jobs(todo, out, b.parallel, REPO)
        for name, wall in walls.items():  # the transfer runs' wall time, kept beside their outputs
            d = next(j[2] for j in todo if j[0] == name)
            if d.exists():
                (d / "wall_s.txt").write_text(f"{wall:.0f}\n")
        for split in b.splits:
            report(b, split, commands=[c for c in commands if f"split:{split} " in c + " " or f"split={split} " in c])


# -- the report ------------------------------------------------------------------------------------
def _cells(b: TransferBench, split: str, seed: int) -> dict[str, dict[str, float]] | None:
    """{held-out task: {column: return}} of one seed (None if its zero-shot run has not finished)."""
    root = Path(b.out) / split / f"s{seed}"
    zs = root / "zero-shot" / "transfer.json"
    if not zs.exists():
        return None
    out: dict[str, dict[str, float]] = {}
    for row in json.loads(zs.read_text())["rows"]:
        cells = {"random": row["random_return"], "in-distribution": row["in_distribution_return"]}
        cells.update({f"zero-shot {i}": row.get(f"zero_shot_{i}") for i in ZERO_SHOT})
        cells.update({f"ratio {i}": row.get(f"transfer_ratio_{i}") for i in ZERO_SHOT})
        out[row["task"]] = cells
    fs = root / "few-shot" / "transfer.json"
    if fs.exists():
        for row in json.loads(fs.read_text())["rows"]:
            for k in b.finetune_k:
                for prefix, name in (("finetune_descriptor+language", "finetune"), ("scratch", "scratch")):
                    v = row.get(f"{prefix}_K{k}", row.get(f"{prefix}_K") if k == max(b.finetune_k) else None)
                    out[row["task"]][f"{name} K={k}"] = v
    return out


def _interval(values: list[float], n: int, rng) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap interval of the mean over seeds."""
    import numpy as np

    v = np.asarray(values, float)
    if len(v) == 1:
        return float(v[0]), float(v[0]), float(v[0])
    means = v[rng.integers(0, len(v), (n, len(v)))].mean(1)
    return float(v.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _walls(b: TransferBench, split: str, seed: int) -> dict[str, float]:
    root = Path(b.out) / split / f"s{seed}"
    out = {}
    for c, d in _run_dirs(b, split, seed).items():
        s = d / "summary.json"
        if s.exists():
            out[f"train {c}"] = json.loads(s.read_text()).get("wall_s") or 0.0
    for kind in ("zero-shot", "few-shot"):
        w = root / kind / "wall_s.txt"
        if w.exists():
            out[kind] = float(w.read_text())
    return out


def report(b: TransferBench, split: str, commands: list[str] | None = None) -> Path | None:
    import numpy as np

    from distributed.run_log import saved_figure

    per_seed = {s: c for s in b.seeds if (c := _cells(b, split, s)) is not None}
    if not per_seed:
        return None
    seeds = sorted(per_seed)
    tasks = list(per_seed[seeds[0]])
    columns = list(dict.fromkeys(k for c in per_seed.values() for cells in c.values() for k in cells))
    rng = np.random.default_rng(0)
    results = Path(b.results)
    results.mkdir(parents=True, exist_ok=True)
    slug = split.replace("-", "_")
    with open(results / f"transfer_{slug}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seed", "task", *columns])
        for s in seeds:
            for t in tasks:
                w.writerow([s, t, *(per_seed[s].get(t, {}).get(c) for c in columns)])

    def stat(task: str | None, col: str):
        """(mean, lo, hi, n seeds) of a column for a task, or of the per-seed mean over held-out tasks."""
        vals = []
        for s in seeds:
            cells = per_seed[s]
            got = [cells[t].get(col) for t in ([task] if task else tasks) if t in cells]
            if got and all(v is not None for v in got):
                vals.append(float(np.mean(got)))
        return (*_interval(vals, b.bootstrap, rng), len(vals)) if vals else None

    def fmt(st, r=False):
        return (
            "-"
            if st is None
            # noqa: E731
            else (f"{st[0]:.2f} [{st[1]:.2f}, {st[2]:.2f}]" if r else f"{st[0]:.0f} [{st[1]:.0f}, {st[2]:.0f}]")
        )

    sp = _split(split)
    returns = ["random", "in-distribution", *(f"zero-shot {i}" for i in ZERO_SHOT)]
    fewshot = [c for c in columns if c.startswith(("finetune", "scratch"))]
    ratios = [f"ratio {i}" for i in ZERO_SHOT]
    walls = {s: _walls(b, split, s) for s in seeds}
    lines = [
        f"# Transfer protocol: split `{split}`",
        "",
        f"{sp.description}.",
        "",
        f"Training tasks: {', '.join(f'`{t}`' for t in sp.train)}. Held out: "
        f"{', '.join(f'`{t}`' for t in sp.held_out)}.",
        "",
        f"Written by `bench/transfer.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Seeds "
        f"{seeds} (of {list(b.seeds)} asked); every cell: {b.episodes} evaluation episodes per seed; the "
        f"interval is a 95% percentile bootstrap over seeds of the per-seed value ({b.bootstrap} resamples). "
        f"Model `{b.model_size}`, {b.steps_per_task} training env steps per training task "
        f"({b.seed_steps_per_task} of them random), batch {b.batch_size}, utd {b.utd}, planner "
        f"{', '.join(b.planner)}.",
        "",
        "## Zero-shot (episode return; mean [95% interval] over seeds)",
        "",
        "| held-out task | " + " | ".join(returns) + " |",
        "|---|" + "---:|" * len(returns),
    ]
    for t in [*tasks, None]:
        lines.append(f"| {t or '**mean of held-out tasks**'} | " + " | ".join(fmt(stat(t, c)) for c in returns) + " |")
    lines += [
        "",
        "`nearest` and `mean`: the descriptor+language+table model's table entries (the nearest training "
        "task by descriptor distance, the mean entry); `descriptor`, `language`, `descriptor+language`: the "
        "feature map of the model trained with that conditioning (+ table), given the held-out task's "
        "descriptor / generated description. `in-distribution`: the descriptor+language+table model on the "
        "nearest training body.",
        "",
        "## Transfer ratio (zero-shot / the same model's in-distribution return on the nearest training body)",
        "",
        "| held-out task | " + " | ".join(r[len("ratio ") :] for r in ratios) + " |",
        "|---|" + "---:|" * len(ratios),
    ]
    for t in [*tasks, None]:
        lines.append(f"| {t or '**mean**'} | " + " | ".join(fmt(stat(t, c), True) for c in ratios) + " |")
    if fewshot:
        fs_tasks = [t for t in tasks if any(per_seed[s].get(t, {}).get(fewshot[0]) is not None for s in seeds)]
        lines += [
            "",
            "## Few-shot (episode return after K env steps on the held-out task alone)",
            "",
            "`finetune`: the descriptor+language+table model, its new task embedding (table entry) trained from "
            "the descriptor+language map's output, 1 update per env step x utd; `scratch`: a fresh single-task "
            "model of the same size, same K (its first min(K, 1000) steps random). Seeds with a finished "
            f"few-shot run: {[s for s in seeds if any(per_seed[s].get(t, {}).get(fewshot[0]) is not None for t in tasks)]}.",
            "",
            "| held-out task | " + " | ".join(fewshot) + " |",
            "|---|" + "---:|" * len(fewshot),
        ]
        for t in fs_tasks:
            lines.append(f"| {t} | " + " | ".join(fmt(stat(t, c)) for c in fewshot) + " |")
    lines += ["", "## Wall time (s, this 2-core machine, one core per run)", ""]
    for s in seeds:
        lines.append(f"- seed {s}: " + ", ".join(f"{k} {v:.0f}" for k, v in walls[s].items()))
    if commands:
        lines += ["", "## Commands", "", *(f"    {c}" for c in commands)]
    lines += ["", f"![transfer {split}](transfer_{slug}.png)"]
    (results / f"transfer_{slug}.md").write_text("\n".join(lines) + "\n")

    n_panels = 2 if fewshot else 1
    with saved_figure(
        results / f"transfer_{slug}.png", 1, n_panels, figsize=(6 * n_panels, 3.6), squeeze=False, dpi=90, bbox="tight"
    ) as (_, axes):
        ax = axes[0, 0]
        sts = [stat(None, c) for c in returns]
        x = np.arange(len(returns))
        ax.bar(
            x,
            [s[0] if s else 0 for s in sts],
            color=["gray", "k", *[f"C{i}" for i in range(len(ZERO_SHOT))]],
            yerr=np.array([[s[0] - s[1], s[2] - s[0]] if s else [0, 0] for s in sts]).T,
            capsize=3,
        )
        ax.set_xticks(x, [c.replace("zero-shot ", "ZS ") for c in returns], rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("return, mean of held-out tasks")
        ax.set_title(f"{split}: zero-shot ({len(seeds)} seed(s), 95% CI)", fontsize=9)
        if fewshot:
            ax = axes[0, 1]
            ks = sorted(b.finetune_k)
            for t in fs_tasks:
                for name, color in (("finetune", "C4"), ("scratch", "C1")):
                    st = [stat(t, f"{name} K={k}") for k in ks]
                    m = [s[0] if s else np.nan for s in st]
                    ax.errorbar(
                        ks,
                        m,
                        yerr=np.array([[s[0] - s[1], s[2] - s[0]] if s else [0, 0] for s in st]).T,
                        marker="o",
                        capsize=3,
                        color=color,
                        label=f"{name} ({t})",
                    )
                zs = stat(t, "zero-shot descriptor+language")
                if zs:
                    ax.axhline(zs[0], color="C4", ls=":", label="zero-shot descriptor+language")
            ax.set_xlabel("K (env steps on the held-out task)")
            ax.set_title("few-shot vs from scratch", fontsize=9)
            ax.legend(fontsize=6)
    print(f"wrote {results / f'transfer_{slug}.md'}", flush=True)
    return results / f"transfer_{slug}.md"


if __name__ == "__main__":
    main(sys.argv[1:])
