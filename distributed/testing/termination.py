"""The termination-head study that bench/termination.py runs: its arms (the same run with and without the
head, paired by seed), a run's score, the exact one-sided Wilcoxon signed-rank comparison with the no-head
arm, the re-evaluation of a finished run's final checkpoint (`rescore`) and the report (termination.md,
.csv, .png). bench/termination.py launches the runs; tests/distributed/test_termination_bench.py checks
the scoring and the report on runs made up on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

HEAD = ["model.termination_head=true"]
ARMS = {
    "hard": HEAD + ["planner.termination=hard", "optim.termination_detach=true"],
    "soft": HEAD + ["planner.termination=soft", "optim.termination_detach=true"],
    "attached": HEAD + ["planner.termination=hard", "optim.termination_detach=false"],
    "attached-soft": HEAD + ["planner.termination=soft", "optim.termination_detach=false"],
    "attached-off": HEAD + ["planner.termination=off", "optim.termination_detach=false"],
    "none": ["model.termination_head=false"],
}


@dataclass
class TerminationBench:
    out: str = "runs/bench/termination"
    task: str = "gym-invertedpendulum"
    arms: list[str] = field(default_factory=lambda: ["hard", "none"])
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    steps: int = 10_000
    seed_steps: int = 500
    model_size: str = "tiny"
    batch_size: int = 128
    planner: list[str] = field(
        default_factory=lambda: ["num_samples=128", "num_elites=16", "num_pi_trajs=8", "iterations=3"]
    )
    eval_freq: int = 2000
    eval_episodes: int = 5
    eval_max_steps: int = 1000
    final_evals: int = 2  # a run's score: the mean of its last evaluations (one is too noisy on a bimodal task)
    parallel: int = 1  # runs at once (each takes one core)
    rescore_episodes: int = 0  # > 0: evaluate every finished run's final checkpoint over this many episodes
    replan: list[str] = field(default_factory=list)  # planner.termination modes to re-evaluate head runs with
    overrides: list[str] = field(default_factory=list)  # more launch/train.py overrides for every run

    def __post_init__(self):
        bad = [a for a in self.arms if a not in ARMS]
        if bad:
            raise ValueError(f"arms {bad}: choose from {list(ARMS)}")
        from agents.config import TERMINATION_MODES

        wrong = [m for m in self.replan if m not in TERMINATION_MODES]
        if wrong:
            raise ValueError(f"replan {wrong}: choose planner termination modes from {list(TERMINATION_MODES)}")
        if self.replan and not self.rescore_episodes:
            raise ValueError("replan re-evaluates final checkpoints: give rescore_episodes=N (e.g. 50) too")


def _random_return(b: TerminationBench, seed: int) -> float:
    """A uniform random policy on the evaluation's env seeds (the loop evaluates with seed + 17)."""
    import numpy as np

    from distributed.evaluator import evaluate_policy
    from envs import load_task_set

    ts = load_task_set(b.task)
    rng, masks = np.random.default_rng(seed), ts.action_masks()

    def act(obs, task_ids, rows):
        return rng.uniform(-1, 1, (len(rows), ts.max_action_dim)).astype(np.float32) * masks[task_ids]

    res = evaluate_policy(act, ts, [b.task], episodes=b.eval_episodes, seed=seed + 17, max_steps=b.eval_max_steps)
    return res["tasks"][b.task]["return"]


RESCORE_SEED = 1000  # env seeds of the final re-evaluation: away from the training-time evaluations' (seed + 17)


def planned_mode(arm: str) -> str | None:
    """The planner.termination mode an arm trains with (None: the arm has no head)."""
    mode = [o.split("=", 1)[1] for o in ARMS[arm] if o.startswith("planner.termination=")]
    return mode[0] if mode else None


def rescore(
    run_dir: Path, task: str, episodes: int, max_steps: int | None, termination: str | None = None
) -> float | None:
    """The mean return of a finished run's final checkpoint over `episodes` episodes (env seeds from
    RESCORE_SEED, the same for every run), computed once and kept in <run_dir>/rescore_<episodes>.json;
    None while the run has not finished. `termination` (hard | soft | off) plans with that use of the
    model's termination head instead of the saved one (kept in rescore_<episodes>_<termination>.json)."""
    from distributed.run_log import finished

    if (kept := _kept_rescore(run_dir, episodes, termination)) is not None:
        return kept
    if not finished(run_dir) or not (run_dir / "checkpoint.pt").exists():
        return None
    from agents.checkpoint import agent_from_checkpoint
    from distributed.evaluator import evaluate
    from envs import load_task_set

    agent, _ = agent_from_checkpoint(run_dir / "checkpoint.pt", device="cpu")
    planner = agent.cfg.planner if termination is None else replace(agent.cfg.planner, termination=termination)
    res = evaluate(
        agent,
        load_task_set(task),
        [task],
        episodes=episodes,
        seed=RESCORE_SEED,
        max_steps=max_steps,
        planner_cfg=planner,
    )
    row = {
        "return": res["tasks"][task]["return"],
        "length": res["tasks"][task]["length"],
        "episodes": episodes,
        "seed": RESCORE_SEED,
        "termination": planner.termination,
    }
    _rescore_file(run_dir, episodes, termination).write_text(json.dumps(row))
    return row["return"]


def signed_rank_p(diffs: list[float]) -> float | None:
    """One-sided exact Wilcoxon signed-rank p-value of "the differences lean positive": the chance,
    with every sign equally likely, of a positive rank sum at least the observed one. Zero
    differences are dropped (Wilcoxon's convention), tied magnitudes get their average rank;
    None without a nonzero difference. Exact enumeration (2^n sign patterns, n <= 20)."""
    d = [x for x in diffs if x != 0]
    if not d:
        return None
    if len(d) > 20:
        raise ValueError(f"{len(d)} pairs: exact enumeration is for n <= 20")
    order = sorted(range(len(d)), key=lambda i: abs(d[i]))
    ranks = [0.0] * len(d)
    i = 0
    while i < len(order):  # average ranks over runs of equal magnitude
        j = i
        while j + 1 < len(order) and abs(d[order[j + 1]]) == abs(d[order[i]]):
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    observed = sum(r for r, x in zip(ranks, d, strict=False) if x > 0)
    n, hits = len(d), 0
    for mask in range(2**n):
        if sum(ranks[k] for k in range(n) if mask >> k & 1) >= observed - 1e-9:
            hits += 1
    return hits / 2**n


def run_scores(run_dir: Path, final_evals: int) -> tuple[list[tuple[int, float]], float | None, float | None]:
    """A run's evaluations [(env step, return)] in order, its score (mean of the last `final_evals`
    returns; None until the run has finished) and its wall time (None while it runs)."""
    from distributed.run_log import finished, read_metrics

    rows = read_metrics(run_dir, "eval") if run_dir.exists() else []
    steps = [r["step"] for r in rows]
    evals = [r["episode_return"] for r in rows]
    summary = run_dir / "summary.json"
    wall = json.loads(summary.read_text()).get("wall_s") if summary.exists() else None
    score = sum(evals[-final_evals:]) / final_evals if finished(run_dir) and len(evals) >= final_evals else None
    return list(zip(steps, evals, strict=False)), score, wall


def _rescore_file(run_dir: Path, episodes: int, termination: str | None = None) -> Path:
    return run_dir / f"rescore_{episodes}{'' if termination is None else '_' + termination}.json"


def _kept_rescore(run_dir: Path, episodes: int, termination: str | None = None) -> float | None:
    kept = _rescore_file(run_dir, episodes, termination)
    return json.loads(kept.read_text())["return"] if episodes and kept.exists() else None


def report(b: TerminationBench, out: Path) -> str:
    import csv
    import statistics

    runs = {(arm, s): run_scores(out / f"{arm}-s{s}", b.final_evals) for arm in b.arms for s in b.seeds}
    final = {(arm, s): _kept_rescore(out / f"{arm}-s{s}", b.rescore_episodes) for arm in b.arms for s in b.seeds}
    random = statistics.mean(_random_return(b, s) for s in b.seeds)
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    with open(out / "termination.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "seed", "score", "final", "wall_s", "evals"])
        w.writerows(
            [arm, s, score, final[arm, s], wall, " ".join(f"{v:.1f}" for _, v in evals)]
            for (arm, s), (evals, score, wall) in runs.items()
        )
    rescored = bool(b.rescore_episodes)
    fin_head = f" final ({b.rescore_episodes} ep.) |" if rescored else ""
    lines = [
        f"# Termination head on {b.task}: {b.steps} env steps, model {b.model_size}, seeds {b.seeds}",
        "",
        f"Score = mean of a run's last {b.final_evals} evaluations ({b.eval_episodes} episodes every "
        f"{b.eval_freq} env steps, capped at {b.eval_max_steps} steps)"
        + (
            f"; final = the final checkpoint over {b.rescore_episodes} episodes on env seeds of their own"
            if rescored
            else ""
        )
        + f". Random policy: {random:.1f}. "
        f"Planner {b.planner}, batch {b.batch_size}, {b.seed_steps} random seeding steps"
        + (f", overrides {b.overrides}" if b.overrides else "")
        + ".",
        "",
        f"| arm | seed | evaluations | score | mean of all |{fin_head} wall s |",
        "|---|---:|---|---:|---:|" + ("---:|" if rescored else "") + "---:|",
    ]
    area = {
        k: statistics.mean(v for _, v in evals) if score is not None else None for k, (evals, score, _) in runs.items()
    }  # mean of every evaluation: how early a run learned
    lines += [
        f"| {arm} | {s} | {' / '.join(f'{v:.1f}' for _, v in evals) or '-'} | {fmt(score)} | "
        f"{fmt(area[arm, s])} |" + (f" {fmt(final[arm, s])} |" if rescored else "") + f" {fmt(wall)} |"
        for (arm, s), (evals, score, wall) in runs.items()
    ]
    lines += [
        "",
        'Per arm over finished runs; "vs none": seeds whose run is above / tied with / below the no-head '
        "run of the same seed (a tie: both at the same value, e.g. every episode at the time limit), and p: "
        'the one-sided exact Wilcoxon signed-rank p-value of "above" over those pairs.',
        "",
        "| arm | runs done | mean score | median score | score vs none | mean of all | mean of all vs none |"
        + (" mean final | final vs none |" if rescored else ""),
        "|---|---:|---:|---:|---|---:|---|" + ("---:|---|" if rescored else ""),
    ]

    def above(arm, per_run):
        pairs = [
            (per_run[arm, s], per_run["none", s])
            for s in b.seeds
            if "none" in b.arms and per_run[arm, s] is not None and per_run["none", s] is not None
        ]
        if arm == "none" or not pairs:
            return "-"
        p = signed_rank_p([v - n for v, n in pairs])
        return f"{sum(v > n for v, n in pairs)}/{sum(v == n for v, n in pairs)}/{sum(v < n for v, n in pairs)}" + (
            "" if p is None else f", p {p:.3f}"
        )

    def mean(arm, per_run):
        vals = [per_run[arm, s] for s in b.seeds if per_run[arm, s] is not None]
        return fmt(statistics.mean(vals) if vals else None)

    scores = {k: v[1] for k, v in runs.items()}
    for arm in b.arms:
        vals = [v for s in b.seeds if (v := scores[arm, s]) is not None]
        lines.append(
            f"| {arm} | {len(vals)} | {mean(arm, scores)} | "
            f"{fmt(statistics.median(vals) if vals else None)} | {above(arm, scores)} | "
            f"{mean(arm, area)} | {above(arm, area)} |"
            + (f" {mean(arm, final)} | {above(arm, final)} |" if rescored else "")
        )
    lines += _replan_lines(b, out, final)
    text = "\n".join(lines) + "\n"
    (out / "termination.md").write_text(text)
    _plot(out / "termination.png", b, runs, random)
    print(text)
    return text


def _replan_lines(b: TerminationBench, out: Path, final: dict) -> list[str]:
    """Per head arm: its final checkpoints planned as trained against the same checkpoints planned
    with each `replan` mode (paired by seed: counts and the one-sided p of "as trained above")."""
    import statistics

    arms = [a for a in b.arms if planned_mode(a)]
    if not b.replan or not arms:
        return []
    lines = [
        "",
        f"The planner's use of the head on the same weights: each finished run's final checkpoint over "
        f"{b.rescore_episodes} episodes (the same env and planner seeds), planned as trained and with "
        f'planner.termination switched; "vs": seeds above / tied / below, and the one-sided exact Wilcoxon '
        f'signed-rank p of "as trained above".',
        "",
        "| arm (trained with) | runs | as trained | " + " | ".join(f"{m} | as trained vs {m}" for m in b.replan) + " |",
        "|---|---:|---:|" + "---:|---|" * len(b.replan),
    ]
    for arm in arms:
        cells = []
        for mode in b.replan:
            pairs = [
                (final[arm, s], v)
                for s in b.seeds
                if final[arm, s] is not None
                and (v := _kept_rescore(out / f"{arm}-s{s}", b.rescore_episodes, mode)) is not None
            ]
            p = signed_rank_p([a - o for a, o in pairs]) if pairs else None
            cells.append(
                "- | -"
                if not pairs
                else f"{statistics.mean(o for _, o in pairs):.1f} | "
                f"{sum(a > o for a, o in pairs)}/{sum(a == o for a, o in pairs)}/{sum(a < o for a, o in pairs)}"
                + ("" if p is None else f", p {p:.3f}")
            )
        done = [final[arm, s] for s in b.seeds if final[arm, s] is not None]
        lines.append(
            f"| {arm} ({planned_mode(arm)}) | {len(done)} | "
            f"{statistics.mean(done) if done else float('nan'):.1f} | " + " | ".join(cells) + " |"
        )
    return lines


def _plot(path: Path, b: TerminationBench, runs: dict, random: float) -> None:
    from distributed.run_log import saved_figure

    with saved_figure(path, figsize=(6, 3.5), dpi=90, bbox="tight") as (_, ax):
        for i, arm in enumerate(b.arms):
            for j, s in enumerate(b.seeds):
                evals = runs[arm, s][0]
                if evals:
                    ax.plot(
                        *zip(*evals, strict=False),
                        color=f"C{i}",
                        alpha=0.6,
                        marker="o",
                        ms=3,
                        label=arm if j == 0 else None,
                    )
        ax.axhline(random, color="gray", ls=":", label="random")
        ax.set_xlabel("env steps")
        ax.set_ylabel("eval return")
        ax.set_title(f"{b.task}: termination head arms, seeds {b.seeds}", fontsize=9)
        ax.legend(fontsize=7)
