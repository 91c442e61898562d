"""Learning parity with TD-MPC2, side by side on this machine: the same task, hyperparameters and seeds, arms

    tdmpc2  TD-MPC2's own online trainer (a user's CPU-patched checkout: bench/tdmpc2_checkout.py)
    local   ours in one process (launch/train.py)
    ray     ours through the Ray job (launch/mt80.py with that task: a runner, a shard, a learner, an evaluator
            as actors, acting with weights that lag the learner)

    python bench/parity.py --tdmpc2 ~/tdmpc2 --extra-path ~/tdmpc2-libs --task cartpole-swingup \\
        --arms tdmpc2 local ray --seeds 1 2 3 [--jobs 2] [--commit]
    python bench/parity.py --report --task cartpole-swingup     # table and figure from the finished runs
    python bench/parity.py ... --settings reference --gpu        # a GPU machine: TD-MPC2's settings, 100k steps

Resumable: each finished (arm, seed) leaves bench/results/parity/<task>/<arm>-s<seed>.json (its evaluations,
wall-clock, command, machine) and is never run again; `--commit` commits each such file as it appears. Runs
go side by side (`--jobs` CPU slots; a tdmpc2 or local run takes one slot and one torch thread, a ray run two
slots: a runner and a learner on a core each); their run directories are under --runs (default runs/parity).
An unfinished run is started again from scratch.

Settings (SETTINGS below; the same on every arm): TD-MPC2's defaults (model 1M: 2 Q heads, dropout 0.01;
horizon 3, 64 elites, 24 policy trajectories, temperature 0.5; lr 3e-4, one update per env step after
max(1000, 5 episodes) random seed steps, the seed steps' updates all at once) except what CPU time forces, the
same change on both sides: 256 planner samples (512), 3 iterations (6), batch 128 (256). Evaluation: 10
episodes at TD-MPC2's eval_freq points (TD-MPC2 also evaluates at step 0).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

MAIN = Path(__file__).resolve().parents[1]
RESULTS = MAIN / "bench" / "results" / "parity"
PY = sys.executable

SETTINGS = {
    # a 2-core CPU machine: what CPU time forces, the same on every arm
    "cpu": dict(
        steps=10_000,
        eval_freq=2_500,
        eval_episodes=10,
        batch_size=128,
        num_samples=256,
        num_elites=64,
        iterations=3,
        num_pi_trajs=24,
    ),
    # a GPU machine: TD-MPC2's own settings to its first published point (results/tdmpc2/<task>.csv, 100k steps)
    "reference": dict(
        steps=100_000,
        eval_freq=10_000,
        eval_episodes=10,
        batch_size=256,
        num_samples=512,
        num_elites=64,
        iterations=6,
        num_pi_trajs=24,
    ),
}
SETTINGS_NAME = "cpu"  # --settings
GPU = False  # --gpu
ARMS = ("tdmpc2", "local", "ray")
SLOTS = {"tdmpc2": 1, "local": 1, "ray": 2}
LABELS = {"tdmpc2": "TD-MPC2 (its own trainer)", "local": "ours, one process", "ray": "ours, Ray job"}
# The Ray job on a 2-core machine: one runner and one learner (a core each), the evaluator and the shard
# beside them; collect 10 steps per call, learn 10 updates per call, publish the weights after each learner
# call, at most 20 updates behind the update-to-data ratio before collection waits
RAY_EXTRA = [
    "num_runners=1",
    "num_learners=1",
    "ray.num_cpus=2",
    "cpus_per_runner=0.8",
    "cpus_per_learner=0.8",
    "cpus_per_evaluator=0.3",
    "cpus_per_shard=0.05",
    "collect_steps=10",
    "updates_per_round=10",
    "publish_every=10",
    "max_lag=20",
    "max_episode_steps=null",
    "eval_max_steps=null",
    "seed_steps=null",
    "utd=1.0",
    "shard_flush_s=2.0",
    "chunk_len=1024",
]


def settings(task: str) -> dict:
    return SETTINGS[SETTINGS_NAME]


def gpu_overrides(arm: str) -> list[str]:
    """--gpu: our arms learn on the GPU (the Ray job's runner plans on it too); TD-MPC2 runs unpatched."""
    if not GPU or arm == "tdmpc2":
        return []
    if arm == "local":
        return ["device=cuda"]
    return ["device=cuda", "gpus_per_learner=0.5", "gpus_per_runner=0.5"]


def command(arm: str, task: str, seed: int, run: Path, tdmpc2: Path | None) -> list[str]:
    s = settings(task)
    if arm == "tdmpc2":
        if tdmpc2 is None:
            raise SystemExit("the tdmpc2 arm needs --tdmpc2 PATH (a CPU-patched checkout: bench/tdmpc2_checkout.py)")
        return [
            PY,
            str(tdmpc2 / "train.py"),
            f"task={task}",
            "model_size=1",
            f"seed={seed}",
            f"steps={s['steps']}",
            f"eval_freq={s['eval_freq']}",
            f"eval_episodes={s['eval_episodes']}",
            f"batch_size={s['batch_size']}",
            f"num_samples={s['num_samples']}",
            f"num_elites={s['num_elites']}",
            f"iterations={s['iterations']}",
            f"num_pi_trajs={s['num_pi_trajs']}",
            "compile=false",
            "save_video=false",
            "enable_wandb=false",
            "save_agent=false",
            "hydra.run.dir=.",
            "hydra/launcher=basic",
        ]
    common = [
        f"task={task}",
        "model_size=1",
        f"seed={seed}",
        f"steps={s['steps']}",
        f"eval_freq={s['eval_freq']}",
        f"eval_episodes={s['eval_episodes']}",
        f"batch_size={s['batch_size']}",
        f"planner.num_samples={s['num_samples']}",
        f"planner.num_elites={s['num_elites']}",
        f"planner.iterations={s['iterations']}",
        f"planner.num_pi_trajs={s['num_pi_trajs']}",
        "diagnostics=false",
        "wandb_mode=disabled",
        "progress=false",
        f"checkpoint_freq={s['eval_freq']}",
        f"run_dir={run / 'run'}",
    ]
    if arm == "local":
        return [PY, "launch/train.py", *common, "torch_threads=1", *gpu_overrides(arm)]
    extra = [o for o in RAY_EXTRA if not (GPU and o.startswith(("ray.num_cpus", "cpus_per_")))]
    return [PY, "launch/mt80.py", "preset=laptop", *common, *extra, *gpu_overrides(arm)]


def environment(arm: str, extra_paths: list[str]) -> dict:
    env = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    if arm == "tdmpc2":
        env["PYTHONPATH"] = os.pathsep.join(extra_paths)
    return env


def evaluations(arm: str, task: str, seed: int, run: Path) -> list[tuple[int, float]]:
    """(env step, mean return over the evaluation's episodes) of a run, in order."""
    if arm == "tdmpc2":
        f = run / "logs" / task / str(seed) / "default" / "eval.csv"
        if not f.exists():
            return []
        with open(f) as fh:
            return [(int(float(r["step"])), float(r["episode_reward"])) for r in csv.DictReader(fh)]
    f = run / "run" / "metrics.jsonl"
    if not f.exists():
        return []
    out = []
    for line in f.read_text().splitlines():
        row = json.loads(line)
        if row.get("kind") == "eval":
            out.append((int(row["step"]), float(row["episode_return"])))
    return out


def machine() -> str:
    import torch

    model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()})"


def results_dir(task: str) -> Path:
    return RESULTS / (task if SETTINGS_NAME == "cpu" else f"{task}-{SETTINGS_NAME}")


def result_path(task: str, arm: str, seed: int) -> Path:
    return results_dir(task) / f"{arm}-s{seed}.json"


def collect(arm: str, task: str, seed: int, run: Path, cmd: list[str], commit: bool) -> dict | None:
    """The result of a finished run (rc 0 and a final evaluation at the budget), written to bench/results."""
    rc_file, started, finished = run / "rc", run / "started", run / "finished"
    if not (rc_file.exists() and started.exists() and finished.exists()) or rc_file.read_text().strip() != "0":
        return None
    evals = evaluations(arm, task, seed, run)
    if not evals or evals[-1][0] < settings(task)["steps"]:
        return None
    result = {
        "task": task,
        "arm": arm,
        "seed": seed,
        "settings": settings(task),
        "evaluations": evals,
        "final_return": evals[-1][1],
        "wall_clock_s": float(finished.read_text()) - float(started.read_text()),
        "command": recorded_command(arm, run, cmd),
        "machine": (run / "machine").read_text().strip() if (run / "machine").exists() else machine(),
        "finished": time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(finished.read_text()))),
    }
    out = result_path(task, arm, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"finished {task} {arm} seed {seed}: final return {result['final_return']:.1f}, "
        f"{result['wall_clock_s'] / 60:.0f} min -> {out.relative_to(MAIN)}",
        flush=True,
    )
    if commit:
        git_commit(
            [out],
            f"bench/parity.py: {task}, {arm}, seed {seed}: final return {result['final_return']:.1f} "
            f"at {evals[-1][0]} steps, {result['wall_clock_s'] / 60:.0f} min",
        )
    return result


def recorded_command(arm: str, run: Path, cmd: list[str]) -> str:
    """The command as anyone can rerun it: paths relative to the repository, the run directory under
    runs/parity, TD-MPC2's package folder as <tdmpc2>."""
    text = " ".join(shlex.quote(str(c)) for c in cmd)
    if arm == "tdmpc2":
        text = text.replace(str(Path(cmd[1]).parent), "<tdmpc2>")
    text = text.replace(str(run.parent.parent), "runs/parity").replace(str(MAIN) + "/", "")
    return text.replace(PY, "python")


def git_commit(paths: list[Path], message: str) -> None:
    for attempt in range(10):  # another git command may hold the index lock for a moment
        add = subprocess.run(["git", "-C", str(MAIN), "add", *map(str, paths)], capture_output=True, text=True)
        done = (
            add.returncode == 0
            and subprocess.run(
                ["git", "-C", str(MAIN), "commit", "-q", "-m", message, "--", *map(str, paths)],
                capture_output=True,
                text=True,
            ).returncode
            == 0
        )
        if done:
            return
        time.sleep(3 + attempt)
    print(f"could not commit {paths} (git busy?): commit them by hand", file=sys.stderr)


def start(arm: str, task: str, seed: int, run: Path, cmd: list[str], extra_paths: list[str]) -> subprocess.Popen:
    run.mkdir(parents=True, exist_ok=True)
    for name in ("rc", "finished"):
        (run / name).unlink(missing_ok=True)
    (run / "machine").write_text(machine() + "\n")
    (run / "command").write_text(" ".join(shlex.quote(c) for c in cmd) + "\n")
    (run / "started").write_text(f"{time.time()}\n")
    log = open(run / "train.log", "w")
    cwd = run if arm == "tdmpc2" else MAIN
    print(f"start {task} {arm} seed {seed}: {run}", flush=True)
    return subprocess.Popen(cmd, cwd=cwd, env=environment(arm, extra_paths), stdout=log, stderr=subprocess.STDOUT)


def run_all(args) -> None:
    tdmpc2 = None
    if "tdmpc2" in args.arms:
        from bench.tdmpc2_checkout import package_dir, require_patched

        if args.tdmpc2 is None:
            raise SystemExit("the tdmpc2 arm needs --tdmpc2 PATH (a CPU-patched checkout: bench/tdmpc2_checkout.py)")
        tdmpc2 = package_dir(args.tdmpc2)
        if not GPU:
            require_patched(tdmpc2)
    runs = Path(args.runs).resolve()
    todo = []
    for seed in args.seeds:  # seed by seed: each seed's arms finish close together
        for arm in args.arms:
            run = runs / args.task / f"{arm}-s{seed}"
            cmd = command(arm, args.task, seed, run, tdmpc2)
            if result_path(args.task, arm, seed).exists():
                continue
            if collect(arm, args.task, seed, run, cmd, args.commit) is not None:  # finished before, not collected
                continue
            todo.append((arm, seed, run, cmd))
    print(f"{len(todo)} run(s) to do: {[f'{a}-s{s}' for a, s, _, _ in todo]}", flush=True)
    active: list[tuple[subprocess.Popen, tuple]] = []
    while todo or active:
        used = sum(SLOTS[a] for _, (a, *_rest) in active)
        while todo and used + SLOTS[todo[0][0]] <= args.jobs:
            item = todo.pop(0)
            arm, seed, run, cmd = item
            active.append((start(arm, args.task, seed, run, cmd, args.extra_path), item))
            used += SLOTS[arm]
        time.sleep(5)
        for proc, item in list(active):
            if proc.poll() is None:
                continue
            active.remove((proc, item))
            arm, seed, run, cmd = item
            (run / "finished").write_text(f"{time.time()}\n")
            (run / "rc").write_text(f"{proc.returncode}\n")
            if collect(arm, args.task, seed, run, cmd, args.commit) is None:
                print(
                    f"FAILED {args.task} {arm} seed {seed} (exit {proc.returncode}): see {run / 'train.log'}",
                    flush=True,
                )
    report(args.task)


def report(task: str) -> None:
    """bench/results/parity_<task>.md + .png from the finished runs' JSON files."""
    files = sorted(results_dir(task).glob("*.json")) if results_dir(task).exists() else []
    results = [json.loads(f.read_text()) for f in files]
    if not results:
        print(f"no finished runs for {task} under {results_dir(task)}")
        return
    by_arm: dict[str, list[dict]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], []).append(r)
    s = settings(task)
    # the Ray job's evaluator runs beside training and starts the next evaluation when it is free: its
    # evaluations land at or after the nominal points (a point whose evaluation was still running is skipped);
    # each is tabled at the nominal point at or below its step
    nominal = lambda step: step // s["eval_freq"] * s["eval_freq"]  # noqa: E731
    steps = sorted({nominal(st) for r in results for st, _ in r["evaluations"]})
    lines = [
        f"# Learning parity with TD-MPC2: {task}",
        "",
        f"`bench/parity.py` (its docstring has the settings and why). Model 1M, {s['steps']:,} env steps, "
        f"evaluations of {s['eval_episodes']} episodes every {s['eval_freq']:,} steps; planner "
        f"{s['num_samples']} samples x {s['iterations']} iterations, {s['num_elites']} elites, "
        f"{s['num_pi_trajs']} policy trajectories; batch {s['batch_size']} (TD-MPC2's defaults: 512 x 6, "
        f"batch 256; reduced on every arm alike for CPU time). Each arm's mean return over its seeds, "
        f"with the lowest and highest seed in brackets; n = seeds finished.",
        "",
        "| step | " + " | ".join(f"{LABELS.get(a, a)}" for a in by_arm) + " |",
        "|---:|" + "---|" * len(by_arm),
    ]
    for st in steps:
        cells = []
        for rs in by_arm.values():
            vals = [v for r in rs for step, v in r["evaluations"] if nominal(step) == st]
            cells.append(
                "" if not vals else f"{statistics.mean(vals):.1f} [{min(vals):.0f}-{max(vals):.0f}] (n={len(vals)})"
            )
        lines.append(f"| {st:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| arm | seed | evaluations (env step: return) | wall-clock (min) | finished | machine |",
        "|---|---:|---|---:|---|---|",
    ]
    for arm, rs in by_arm.items():
        for r in sorted(rs, key=lambda r: r["seed"]):
            evals = ", ".join(f"{st:,}: {v:.1f}" for st, v in r["evaluations"])
            lines.append(
                f"| {LABELS.get(arm, arm)} | {r['seed']} | {evals} | "
                f"{r['wall_clock_s'] / 60:.0f} | {r['finished']} | {r['machine']} |"
            )
            if r.get("note"):
                lines.append(f"|  |  | {r['note']} |  |  |  |")
    lines += ["", "Commands (from the repository root; the tdmpc2 arm runs in its run directory):", ""]
    for arm, rs in by_arm.items():
        lines.append(f"- {arm}: `{rs[0]['command']}`")
    md = MAIN / "bench" / "results" / f"parity_{results_dir(task).name}.md"
    md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _figure(task, by_arm)
    print(f"\nwrote {md.relative_to(MAIN)} and {md.with_suffix('.png').relative_to(MAIN)}")


def _figure(task: str, by_arm: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for arm, rs in by_arm.items():
        steps = sorted({s for r in rs for s, _ in r["evaluations"]})
        vals = [[v for r in rs for s2, v in r["evaluations"] if s2 == s] for s in steps]
        mean = [statistics.mean(v) for v in vals]
        ax.plot(steps, mean, marker="o", label=f"{LABELS.get(arm, arm)} (n={len(rs)})")
        ax.fill_between(steps, [min(v) for v in vals], [max(v) for v in vals], alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"return ({settings(task)['eval_episodes']} episodes)")
    ax.set_title(f"{task}: mean over seeds, band = lowest to highest seed")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(MAIN / "bench" / "results" / f"parity_{results_dir(task).name}.png", dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="cartpole-swingup")
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--tdmpc2", help="TD-MPC2's checkout or its tdmpc2/ folder, CPU-patched")
    p.add_argument(
        "--extra-path", action="append", default=[], help="import paths for the tdmpc2 arm (its tensordict, ...)"
    )
    p.add_argument("--runs", default=str(MAIN / "runs" / "parity"), help="where the run directories go")
    p.add_argument("--jobs", type=int, default=2, help="CPU slots for runs side by side")
    p.add_argument("--commit", action="store_true", help="git-commit each finished run's result file")
    p.add_argument("--report", action="store_true", help="only write the table and figure")
    p.add_argument(
        "--settings",
        default="cpu",
        choices=sorted(SETTINGS),
        help="cpu: this machine's reduced settings; reference: TD-MPC2's, to 100k steps (a GPU machine)",
    )
    p.add_argument("--gpu", action="store_true", help="our arms on CUDA; TD-MPC2 from an unpatched checkout")
    args = p.parse_args()
    global SETTINGS_NAME, GPU
    SETTINGS_NAME, GPU = args.settings, args.gpu
    sys.path.insert(0, str(MAIN))
    if args.report:
        report(args.task)
    else:
        run_all(args)


if __name__ == "__main__":
    main()
