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
from typing import List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REPO = Path(__file__).resolve().parents[1]


@dataclass
class ConstraintsBench:
    task: str = "cheetah-run"
    steps: int = 8000
    max_delta: float = 0.2
    seeds: List[int] = field(default_factory=lambda: [1])
    seed_steps: int = 1000
    batch_size: int = 64
    eval_freq: int = 4000
    eval_episodes: int = 3
    planner: List[str] = field(default_factory=lambda: ["num_samples=128", "num_elites=16", "num_pi_trajs=8",
                                                        "iterations=3"])
    runs_dir: str = "runs/bench-constraints"
    results_dir: str = "bench/results"
    parallel: bool = True  # both arms of a seed at once (one core each)


def run_command(b: ConstraintsBench, seed: int, limited: bool) -> list[str]:
    arm = f"rate{b.max_delta:g}" if limited else "free"
    return [sys.executable, str(REPO / "launch" / "train.py"), f"task={b.task}", "model_size=tiny",
            f"steps={b.steps}", f"seed={seed}", f"seed_steps={b.seed_steps}", f"batch_size={b.batch_size}",
            f"eval_freq={b.eval_freq}", f"eval_episodes={b.eval_episodes}", f"checkpoint_freq={b.steps}",
            "diagnostics=false", "wandb_mode=disabled", "progress=false", "torch_threads=1",
            f"run_dir={Path(b.runs_dir) / f'{b.task}-{arm}-s{seed}'}",
            *[f"planner.{p}" for p in b.planner], *([f"constraints.max_delta=[{b.max_delta}]"] if limited else [])]


def read_run(run_dir: Path) -> dict:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [r for r in rows if r["kind"] == "eval"]
    summary = [r for r in rows if r["kind"] == "summary"][-1]
    episodes = [r for r in rows if r["kind"] == "episode"] if any(r["kind"] == "episode" for r in rows) else []
    return {"evals": [(r["step"], r["episode_return"], r.get("constraint_violations")) for r in evals],
            "final_return": evals[-1]["episode_return"], "wall_s": summary["wall_s"], "env_steps": summary["env_steps"],
            "train_violations": sum(r.get("constraint_violations", 0) for r in episodes) if episodes else None}


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
            commands[(seed, limited)] = " ".join(cmd[1:])
            if (run_dir / "metrics.jsonl").exists() and '"summary"' in (run_dir / "metrics.jsonl").read_text():
                continue  # finished earlier: resume the table only
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
            results[(seed, limited)] = read_run(run_dir)
    write_table(b, results, commands, machine)


def write_table(b: ConstraintsBench, results: dict, commands: dict, machine: str) -> None:
    r = f"{b.max_delta:g}"
    lines = [f"# Rate limit |a_t - a_(t-1)| <= {r} on {b.task}: return with and without", "",
             f"Short runs: {b.steps} env steps per run (agent steps, action repeat 2), tiny model, reduced planner "
             f"({', '.join(b.planner)}), batch {b.batch_size}, utd 1, {b.seed_steps} seed steps, seeds {b.seeds}. "
             f"This is far from a trained cheetah (TD-MPC2 reports ~800 after 1M+ steps); the table compares two "
             f"equally short runs, nothing more. Evaluation: {b.eval_episodes} episodes, deterministic actions, "
             f"same env seeds for both arms; violations are counted by the evaluator on every executed action "
             f"and by the env runner on every training action (seeding steps included).", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine}. Each run one torch thread "
             f"under `nice`; the 2-core machine was shared with other experiments, so wall times are loose.", "",
             "| seed | arm | env steps | eval return (final) | eval returns by step | violations (eval) | "
             "violations (training episodes) | wall s |", "|---:|---|---:|---:|---|---:|---:|---:|"]
    for (seed, limited), res in sorted(results.items()):
        curve = ", ".join(f"{s}: {v:.1f}" for s, v, _ in res["evals"])
        ev = sum(x for _, _, x in res["evals"] if x is not None) if limited else "-"
        tr = res["train_violations"] if limited and res["train_violations"] is not None else "-"
        lines.append(f"| {seed} | {'limit ' + r if limited else 'no limit'} | {res['env_steps']} | "
                     f"{res['final_return']:.1f} | {curve} | {ev} | {tr} | {res['wall_s']:.0f} |")
    lines += ["", "Commands (from the repository root, `OMP_NUM_THREADS=1 WANDB_MODE=disabled`):", ""]
    lines += [f"    python {c}" for _, c in sorted(commands.items())]
    out = REPO / b.results_dir / f"constraints_{b.task}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
