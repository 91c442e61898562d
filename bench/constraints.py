"""What a rate limit costs: the same task and env steps trained with and without |a_t - a_{t-1}| <= r.

    nice -n 10 python bench/constraints.py [task=cheetah-run] [steps=8000] [max_delta=0.2] [seeds=[1]] [parallel=true]

Runs launch/train.py twice per seed (tiny model, reduced planner, one torch thread each), once
unconstrained and once with `constraints.max_delta=[r]`, evaluates both with the same evaluator on
the same env seeds, and writes bench/results/constraints_<task>.md: return with and without the
limit, the constrained run's violations (training episodes and evaluation; must be 0), steps, seeds,
wall time, the machine and the exact commands. Runs resume if re-run with the same out directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REPO = Path(__file__).resolve().parents[1]


@dataclass
class ConstraintsBench:
    task: str = "cheetah-run"
    steps: int = 8000
    max_delta: float = 0.2
    seeds: list[int] = field(default_factory=lambda: [1])
    seed_steps: int = 1000
    batch_size: int = 64
    eval_freq: int = 4000
    eval_episodes: int = 3
    planner: list[str] = field(
        default_factory=lambda: ["num_samples=128", "num_elites=16", "num_pi_trajs=8", "iterations=3"]
    )
    runs_dir: str = "runs/bench-constraints"
    results_dir: str = "bench/results"
    parallel: bool = True  # both arms of a seed at once (one core each)
    table_only: bool = False  # launch nothing: write the table from the runs as they are (stopped ones marked)


def run_command(b: ConstraintsBench, seed: int, limited: bool) -> list[str]:
    arm = f"rate{b.max_delta:g}" if limited else "free"
    return [
        sys.executable,
        str(REPO / "launch" / "train.py"),
        f"task={b.task}",
        "model_size=tiny",
        f"steps={b.steps}",
        f"seed={seed}",
        f"seed_steps={b.seed_steps}",
        f"batch_size={b.batch_size}",
        f"eval_freq={b.eval_freq}",
        f"eval_episodes={b.eval_episodes}",
        f"checkpoint_freq={b.steps}",
        "diagnostics=false",
        "wandb_mode=disabled",
        "progress=false",
        "torch_threads=1",
        f"run_dir={Path(b.runs_dir) / f'{b.task}-{arm}-s{seed}'}",
        *[f"planner.{p}" for p in b.planner],
        *([f"constraints.max_delta=[{b.max_delta}]"] if limited else []),
    ]


def store_violations(shard: Path, task: str, max_delta: float) -> tuple[int, int, float]:
    """Re-check every stored training action (seeding included) of a run: (steps breaking
    |a_t - a_{t-1}| <= max_delta or [-1, 1], steps checked, largest step change seen)."""
    from agents.config import ActionConstraints
    from distributed.offline.exporter import store_episodes
    from envs import task_spec

    dim = task_spec(task).action_dim
    limit = ActionConstraints(max_delta=(max_delta,))
    bad = steps = 0
    largest = 0.0
    for episodes in store_episodes(shard):
        for ep in episodes:
            actions = ep["action"][1:, :dim]  # row 0 of a stored episode holds no action
            bad += limit.violations(actions)
            steps += len(actions)
            largest = max(largest, float(abs(actions[1:] - actions[:-1]).max(initial=0.0)))
    return bad, steps, largest


def read_run(run_dir: Path, task: str, max_delta: float) -> dict:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [r for r in rows if r["kind"] == "eval"]
    summary = [r for r in rows if r["kind"] == "summary"]
    if not evals:
        raise SystemExit(f"run {run_dir} has no evaluation yet")
    bad, steps, largest = store_violations(run_dir / "replay" / "shard-000", task, max_delta)
    return {
        "evals": [(r["step"], r["episode_return"], r.get("constraint_violations")) for r in evals],
        "final_return": evals[-1]["episode_return"],
        "stopped": not summary,
        "wall_s": summary[-1]["wall_s"] if summary else rows[-1]["time"],
        "env_steps": summary[-1]["env_steps"] if summary else max(r["step"] for r in rows),
        "train_violations": bad,
        "train_steps": steps,
        "largest_change": largest,
    }


def main(argv: list[str]) -> None:
    import torch

    from bench.common import machine_line, matmul_gflops
    from distributed.config import compose_options

    b = compose_options(ConstraintsBench, argv)
    torch.set_num_threads(1)
    machine = machine_line(matmul_gflops())
    commands, results = {}, {}
    for seed in b.seeds:
        procs = []
        for limited in (False, True):
            cmd = run_command(b, seed, limited)
            run_dir = Path(cmd[[c.startswith("run_dir=") for c in cmd].index(True)].split("=", 1)[1])
            commands[(seed, limited)] = " ".join(["launch/train.py", *cmd[2:]])
            if b.table_only or (
                (run_dir / "metrics.jsonl").exists() and '"summary"' in (run_dir / "metrics.jsonl").read_text()
            ):
                continue  # finished earlier (or asked for the table only)
            env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
            print("running:", " ".join(cmd), flush=True)
            p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
            procs.append(p) if b.parallel else p.wait()
        for p in procs:
            p.wait()
        for limited in (False, True):
            cmd = run_command(b, seed, limited)
            run_dir = REPO / cmd[[c.startswith("run_dir=") for c in cmd].index(True)].split("=", 1)[1]
            if not (run_dir / "metrics.jsonl").exists():
                raise SystemExit(f"run {run_dir} wrote no metrics.jsonl: see its output above")
            results[(seed, limited)] = read_run(run_dir, b.task, b.max_delta)
    write_table(b, results, commands, machine)


def write_table(b: ConstraintsBench, results: dict, commands: dict, machine: str) -> None:
    r = f"{b.max_delta:g}"
    lines = [
        f"# Rate limit |a_t - a_(t-1)| <= {r} on {b.task}: return with and without",
        "",
        f"Short runs: {b.steps} env steps per run (agent steps, action repeat 2), tiny model, reduced planner "
        f"({', '.join(b.planner)}), batch {b.batch_size}, utd 1, {b.seed_steps} seed steps, seeds {b.seeds}. "
        f"This is far from a trained cheetah; the table compares equally "
        f"short runs, nothing more. Evaluation: {b.eval_episodes} episodes, deterministic actions, "
        f"same env seeds for both arms; violations are counted by the evaluator on every executed action "
        f"and, for training, by re-reading every action stored in the run's replay store (seeding steps "
        f"included). The unconstrained run's store is checked against the same limit, to show it binds.",
        "",
        f"Table written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine} (the matmul rate "
        f"is taken when the table is written, under whatever load the machine had then). Each run one torch thread "
        f"under `nice`; the 2-core machine was shared with other experiments, so wall times are loose.",
        "",
        "| seed | arm | env steps | eval return (final) | eval returns by step | violations (eval) | "
        "steps breaking the limit (stored training actions) | largest stored step change | wall s |",
        "|---:|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for (seed, limited), res in sorted(results.items()):
        curve = ", ".join(f"{s}: {v:.1f}" for s, v, _ in res["evals"])
        ev = sum(x for _, _, x in res["evals"] if x is not None) if limited else "- (not counted)"
        stopped = " (stopped early)" if res["stopped"] else ""
        lines.append(
            f"| {seed} | {'limit ' + r if limited else 'no limit'} | {res['env_steps']}{stopped} | "
            f"{res['final_return']:.1f} | {curve} | {ev} | {res['train_violations']} of {res['train_steps']} | "
            f"{res['largest_change']:.3f} | {res['wall_s']:.0f} |"
        )
    free = [res["final_return"] for (_, lim), res in results.items() if not lim]
    limited = [res["final_return"] for (_, lim), res in results.items() if lim]
    if free and limited:
        a, c = sum(free) / len(free), sum(limited) / len(limited)
        lines += [
            "",
            f"Mean final eval return over {len(free)} seed(s): no limit {a:.1f}, limit {r} {c:.1f} "
            f"(ratio {c / a:.2f}). Two short seeds give the sign of the cost, not its size.",
        ]
    lines += ["", "Commands (from the repository root, `OMP_NUM_THREADS=1 WANDB_MODE=disabled`):", ""]
    lines += [f"    python {c}" for _, c in sorted(commands.items())]
    out = REPO / b.results_dir / f"constraints_{b.task}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
