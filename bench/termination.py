"""The termination head on an episodic task: the same run with and without it, paired by seed.

    python bench/termination.py out=runs/bench/termination 'seeds=[1,2,3,4,5]' parallel=2
    python bench/termination.py out=... 'arms=[hard,none]' task=gym-hopper steps=100000

Arms (every other setting equal, so a seed's runs share their random stream up to the first plan
that differs: the head's initial weights come from a fork of the generator):
  hard           the head trained on detached latents, planned with TD-MPC2's cut-off at p > 0.5
  soft           the head as shipped: the same head, each later reward and the terminal value weighted by P(alive)
  attached       TD-MPC2's head: its BCE's gradient also shapes the encoder and dynamics; hard cut-off
  attached-soft  that head, soft weighting
  attached-off   that head trained, the planner ignores it (tells the loss's effect from the planner's use)
  none           no head (model.termination_head=false)
Each run evaluates `eval_episodes` episodes every `eval_freq` env steps on the same env seeds; its
score is the mean of its last `final_evals` evaluations. With `rescore_episodes=N` each finished run's
final checkpoint is also evaluated over N episodes on other env seeds (kept in <run>/rescore_<N>.json):
the final policy measured with less evaluation noise. With `replan=[off,soft]` too, every finished run
with a head is re-evaluated the same way with the planner's use of its head switched (`planner.termination`):
the same weights, env seeds and planner seeds, only the cut-off differs (kept in <run>/rescore_<N>_<mode>.json),
and the report compares the run's own mode with each. Writes <out>/termination.md (per seed and arm:
every evaluation, the score, wall time; per arm: mean, median, seeds above/tied/below `none`, and the
one-sided Wilcoxon signed-rank p of "above none" over the paired seeds), termination.csv,
termination.png, the commands, and a random policy's return on the same env seeds.
Runs resume: a re-run with the same out skips finished runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from distributed.testing.termination import ARMS, TerminationBench, planned_mode, report, rescore  # noqa: E402


def _train_cmd(b: TerminationBench, arm: str, seed: int, run_dir: Path) -> list[str]:
    return (
        [
            sys.executable,
            str(REPO / "launch/train.py"),
            f"task={b.task}",
            f"model_size={b.model_size}",
            f"steps={b.steps}",
            f"seed_steps={b.seed_steps}",
            f"seed={seed}",
            f"batch_size={b.batch_size}",
            f"eval_freq={b.eval_freq}",
            f"eval_episodes={b.eval_episodes}",
            f"eval_max_steps={b.eval_max_steps}",
            "checkpoint_freq=100000000",
            "diagnostics=false",
            "torch_threads=1",
            "wandb_mode=disabled",
            "progress=false",
            f"run_dir={run_dir}",
        ]
        + [f"planner.{p}" for p in b.planner]
        + ARMS[arm]
        + list(b.overrides)
    )


def main(argv: list[str]) -> None:
    from bench.common import run_jobs
    from launch.common import options

    b = options(TerminationBench, argv)
    out = Path(b.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        (f"{arm}-s{seed}", _train_cmd(b, arm, seed, out / f"{arm}-s{seed}"), out / f"{arm}-s{seed}")
        for seed in b.seeds
        for arm in b.arms
    ]
    (out / "commands.md").write_text(
        "# Commands\n\n" + "\n".join(f"- {n}: `{' '.join(c[1:])}`" for n, c, _ in jobs) + "\n"
    )
    run_jobs(jobs, out, b.parallel, REPO)
    if b.rescore_episodes:
        from agents.host import use_cpu_share

        use_cpu_share(1)
        for name, _, run_dir in jobs:
            value = rescore(run_dir, b.task, b.rescore_episodes, b.eval_max_steps)
            print(f"rescore {name}: {value if value is None else round(value, 1)}", flush=True)
            for mode in b.replan if planned_mode(name.rsplit("-s", 1)[0]) else ():
                value = rescore(run_dir, b.task, b.rescore_episodes, b.eval_max_steps, termination=mode)
                print(f"rescore {name} termination={mode}: {value if value is None else round(value, 1)}", flush=True)
    report(b, out)


if __name__ == "__main__":
    main(sys.argv[1:])
