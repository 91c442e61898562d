"""Offline multitask parity with TD-MPC2: one small mt30 data set collected here; TD-MPC2's offline multitask
trainer and ours train on it for the same updates, from the same seeds; both evaluated online per task.

    python bench/parity_offline.py --tdmpc2 ~/tdmpc2 --extra-path ~/tdmpc2-libs [--seeds 1 2 3] [--jobs 2] [--commit]
    python bench/parity_offline.py --report             # the table from the finished runs

Stages, each resumable (a finished stage is never run again; an unfinished run starts again from scratch):
1. data: our trainer online on the tasks (launch/train.py, task list, DATA settings), its replay store exported
   to TD-MPC2's chunk format (launch/export_tdmpc2.py's exporter) with mt30's task ids and widths (obs 24,
   action 6, zero-padded as TD-MPC2's multitask wrapper pads), then imported into a replay store of ours with
   mt30's task names (launch/import_tdmpc2.py's importer): both codes read the same episodes.
2. per seed, arm `tdmpc2`: TD-MPC2's OfflineTrainer (bench/tdmpc2_offline.py: its buffer sized to the data and its
   evaluation over the data's tasks, nothing else changed), task=mt30, model 1M.
3. per seed, arm `ours`: launch/train.py task=mt30 only_tasks=<the tasks> num_runners=0 offline_data=<store>.
Both: SETTINGS below (TD-MPC2's defaults except the planner and batch, reduced alike for CPU time, as in
bench/parity.py). Each finished (arm, seed) leaves bench/results/parity_offline/<arm>-s<seed>.json; `--commit`
commits it; the table is bench/results/parity_offline.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

MAIN = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(MAIN))

from bench.parity import git_commit, machine  # noqa: E402

RESULTS = MAIN / "bench" / "results" / "parity_offline"
PY = sys.executable
TASK_SET = "mt30"
TASKS = ["cartpole-swingup", "reacher-easy", "cup-catch"]  # three bodies of mt30
# the data: our trainer online on the three tasks (a learner's episodes, from random to competent)
DATA = dict(
    steps_per_task=6_000,
    model_size="1",
    batch_size=128,
    utd=0.5,
    num_samples=128,
    num_elites=32,
    iterations=2,
    num_pi_trajs=16,
)
SETTINGS = dict(
    updates=10_000,
    eval_freq=5_000,
    eval_episodes=10,
    batch_size=128,
    num_samples=256,
    num_elites=64,
    iterations=3,
    num_pi_trajs=24,
)
ARMS = ("tdmpc2", "ours")
LABELS = {"tdmpc2": "TD-MPC2 (its offline trainer)", "ours": "ours (launch/train.py, offline)"}


def env(extra_paths: list[str] | None = None) -> dict:
    out = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    if extra_paths is not None:
        out["PYTHONPATH"] = os.pathsep.join(extra_paths)
        out["LATENTFLEET_EVAL_TASKS"] = ",".join(TASKS)
    return out


def run_logged(cmd: list[str], log: Path, cwd: Path, environ: dict) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        return subprocess.call(cmd, cwd=cwd, env=environ, stdout=fh, stderr=subprocess.STDOUT)


# -- stage 1: the data set -------------------------------------------------------------------------------
def make_data(runs: Path) -> tuple[Path, Path]:
    """(dir of TD-MPC2 chunks, our replay store), made once."""
    data, chunks, store = runs / "data", runs / "data" / "chunks", runs / "data" / "store"
    done = data / "done.json"
    if done.exists():
        return chunks, store
    online = data / "online"
    if not (online / "summary.json").exists():
        cmd = [
            PY,
            "launch/train.py",
            "task='" + ",".join(TASKS) + "'",
            f"model_size={DATA['model_size']}",
            "seed=0",
            f"steps={DATA['steps_per_task'] * len(TASKS)}",
            f"batch_size={DATA['batch_size']}",
            f"utd={DATA['utd']}",
            f"planner.num_samples={DATA['num_samples']}",
            f"planner.num_elites={DATA['num_elites']}",
            f"planner.iterations={DATA['iterations']}",
            f"planner.num_pi_trajs={DATA['num_pi_trajs']}",
            f"eval_freq={DATA['steps_per_task'] * len(TASKS)}",
            "eval_episodes=1",
            f"checkpoint_freq={DATA['steps_per_task']}",
            "diagnostics=false",
            "wandb_mode=disabled",
            "progress=false",
            "torch_threads=1",
            f"run_dir={online}",
        ]
        print("data: collecting online with our trainer:", " ".join(cmd[1:]), flush=True)
        if run_logged(cmd, data / "online.log", MAIN, env()) != 0:
            raise SystemExit(f"data collection failed: see {data / 'online.log'}")
    episodes = to_tdmpc2_chunks(online / "replay", chunks)
    from distributed.offline.importer import import_tdmpc2
    from envs import load_task_set

    print(
        import_tdmpc2(sorted(chunks.glob("*.pt")), store / "shard-000", task_names=list(load_task_set(TASK_SET).names))
    )
    done.write_text(json.dumps({"episodes": episodes, "tasks": TASKS, "data": DATA}, indent=1) + "\n")
    return chunks, store


def to_tdmpc2_chunks(replay: Path, out: Path) -> dict[str, int]:
    """Our store (task ids of the TASKS list, padded to their widest) -> TD-MPC2 chunks with mt30's task ids and
    widths; returns episodes per task."""
    import torch

    from distributed.batches import shard_paths
    from distributed.offline.exporter import export_tdmpc2
    from envs import load_task_set

    ts = load_task_set(TASK_SET)
    ids = torch.tensor([ts.names.index(t) for t in TASKS])
    obs_dim, action_dim = ts.max_obs_dim, ts.max_action_dim
    raw = out.parent / "exported"
    files = export_tdmpc2(shard_paths(str(replay)), raw, episodes_per_file=1000, progress=False)
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for f in files:
        d = torch.load(f, weights_only=True)
        n, rows = d["reward"].shape
        d["obs"] = torch.nn.functional.pad(d["obs"], (0, obs_dim - d["obs"].shape[-1]))
        d["action"] = torch.nn.functional.pad(d["action"], (0, action_dim - d["action"].shape[-1]))
        d["action"][:, 0] = float("nan")  # row 0 has no action (padding above made its new dims 0)
        d["task"] = ids[d["task"]]
        for t in d["task"][:, 0].tolist():
            counts[ts.names[t]] = counts.get(ts.names[t], 0) + 1
        torch.save(d, out / Path(f).name)
    print(f"data: {sum(counts.values())} episodes of {rows} rows in TD-MPC2's format: {counts}", flush=True)
    return counts


# -- stages 2, 3: the arms --------------------------------------------------------------------------------
def command(arm: str, seed: int, run: Path, chunks: Path, store: Path, tdmpc2: Path | None) -> list[str]:
    s = SETTINGS
    if arm == "tdmpc2":
        assert tdmpc2 is not None
        return [
            PY,
            str(MAIN / "bench" / "tdmpc2_offline.py"),
            str(tdmpc2),
            f"task={TASK_SET}",
            "model_size=1",
            f"seed={seed}",
            f"steps={s['updates'] + 1}",  # its loop is range(steps): +1 evaluates at `updates` too
            f"data_dir={chunks}",
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
    return [
        PY,
        "launch/train.py",
        f"task={TASK_SET}",
        "only_tasks='" + ",".join(TASKS) + "'",
        "num_runners=0",
        f"offline_data={store}",
        "model_size=1",
        f"seed={seed}",
        f"steps={s['updates']}",
        f"eval_freq={s['eval_freq']}",
        f"eval_episodes={s['eval_episodes']}",
        f"batch_size={s['batch_size']}",
        f"planner.num_samples={s['num_samples']}",
        f"planner.num_elites={s['num_elites']}",
        f"planner.iterations={s['iterations']}",
        f"planner.num_pi_trajs={s['num_pi_trajs']}",
        f"checkpoint_freq={s['eval_freq']}",
        "diagnostics=false",
        "wandb_mode=disabled",
        "progress=false",
        "torch_threads=1",
        f"run_dir={run / 'run'}",
    ]


def evaluations(arm: str, run: Path) -> list[dict]:
    """[{"updates": n, "returns": {task: mean return}}] of a run, in order."""
    if arm == "tdmpc2":
        f = run / "eval.jsonl"
        rows = [json.loads(x) for x in f.read_text().splitlines()] if f.exists() else []
        return [{"updates": r["iteration"], "returns": r["returns"]} for r in rows]
    f = run / "run" / "metrics.jsonl"
    out = []
    for line in f.read_text().splitlines() if f.exists() else []:
        row = json.loads(line)
        if row.get("kind") == "eval":
            out.append({"updates": int(row["step"]), "returns": {t: float(row[f"return/{t}"]) for t in TASKS}})
    return out


def shell_word(arg: str) -> str:
    """An argument as typed in a shell: Hydra's quoted values (`only_tasks='a,b'`) in double quotes."""
    return f'"{arg}"' if "'" in arg and '"' not in arg and "$" not in arg else shlex.quote(arg)


def result_path(arm: str, seed: int) -> Path:
    return RESULTS / f"{arm}-s{seed}.json"


def collect(arm: str, seed: int, run: Path, cmd: list[str], commit: bool) -> dict | None:
    rc, started, finished = run / "rc", run / "started", run / "finished"
    if not (rc.exists() and started.exists() and finished.exists()) or rc.read_text().strip() != "0":
        return None
    evals = evaluations(arm, run)
    if not evals or evals[-1]["updates"] < SETTINGS["updates"]:
        return None
    text = " ".join(shell_word(str(c)) for c in cmd).replace(PY, "python").replace(str(MAIN) + "/", "")
    text = text.replace(str(run.parent), "runs/parity_offline")
    if arm == "tdmpc2":
        text = text.replace(str(cmd[2]), "<tdmpc2>")
    result = {
        "arm": arm,
        "seed": seed,
        "task_set": TASK_SET,
        "tasks": TASKS,
        "settings": SETTINGS,
        "data": json.loads((run.parent / "data" / "done.json").read_text()),
        "evaluations": evals,
        "final_returns": evals[-1]["returns"],
        "wall_clock_s": float(finished.read_text()) - float(started.read_text()),
        "command": text,
        "machine": machine(),
        "finished": time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(finished.read_text()))),
    }
    out = result_path(arm, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    finals = ", ".join(f"{t} {v:.1f}" for t, v in result["final_returns"].items())
    print(f"finished {arm} seed {seed}: {finals}; {result['wall_clock_s'] / 60:.0f} min", flush=True)
    if commit:
        git_commit([out], f"bench/parity_offline.py: {arm}, seed {seed}: {finals} after {SETTINGS['updates']} updates")
    return result


def run_all(args) -> None:
    tdmpc2 = None
    if "tdmpc2" in args.arms:
        from bench.tdmpc2_checkout import package_dir, require_patched

        if args.tdmpc2 is None:
            raise SystemExit("the tdmpc2 arm needs --tdmpc2 PATH (a CPU-patched checkout: bench/tdmpc2_checkout.py)")
        tdmpc2 = package_dir(args.tdmpc2)
        require_patched(tdmpc2)
    runs = Path(args.runs).resolve()
    chunks, store = make_data(runs)
    todo = []
    for seed in args.seeds:
        for arm in args.arms:
            run = runs / f"{arm}-s{seed}"
            cmd = command(arm, seed, run, chunks, store, tdmpc2)
            if result_path(arm, seed).exists() or collect(arm, seed, run, cmd, args.commit) is not None:
                continue
            todo.append((arm, seed, run, cmd))
    print(f"{len(todo)} run(s) to do: {[f'{a}-s{s}' for a, s, _, _ in todo]}", flush=True)
    active: list[tuple[subprocess.Popen, tuple]] = []
    while todo or active:
        while todo and len(active) < args.jobs:
            arm, seed, run, cmd = item = todo.pop(0)
            run.mkdir(parents=True, exist_ok=True)
            for name in ("rc", "finished", "eval.jsonl"):
                (run / name).unlink(missing_ok=True)
            (run / "started").write_text(f"{time.time()}\n")
            log = open(run / "train.log", "w")
            print(f"start {arm} seed {seed}: {run}", flush=True)
            proc = subprocess.Popen(
                cmd,
                cwd=run if arm == "tdmpc2" else MAIN,
                env=env(args.extra_path if arm == "tdmpc2" else None),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            active.append((proc, item))
        time.sleep(5)
        for proc, item in list(active):
            if proc.poll() is None:
                continue
            active.remove((proc, item))
            arm, seed, run, cmd = item
            (run / "finished").write_text(f"{time.time()}\n")
            (run / "rc").write_text(f"{proc.returncode}\n")
            if collect(arm, seed, run, cmd, args.commit) is None:
                print(f"FAILED {arm} seed {seed} (exit {proc.returncode}): see {run / 'train.log'}", flush=True)
    report()


def report() -> None:
    files = sorted(RESULTS.glob("*.json")) if RESULTS.exists() else []
    results = [json.loads(f.read_text()) for f in files]
    if not results:
        print(f"no finished runs under {RESULTS}")
        return
    by_arm: dict[str, list[dict]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], []).append(r)
    s, data = SETTINGS, results[0]["data"]
    points = sorted({e["updates"] for r in results for e in r["evaluations"] if e["updates"] > 0})
    lines = [
        "# Offline multitask parity with TD-MPC2 (mt30 model, three of its tasks)",
        "",
        f"`bench/parity_offline.py` (its docstring has the protocol). Data: our trainer online on "
        f"{', '.join(TASKS)} ({data['data']['steps_per_task']:,} env steps each; episodes per task "
        f"{data['episodes']}), in TD-MPC2's format with mt30's task ids and widths; both codes read those "
        f"episodes. Model 1M (mt30: task dim 96), {s['updates']:,} updates, batch {s['batch_size']}; "
        f"evaluations of {s['eval_episodes']} episodes per task; planner {s['num_samples']} samples x "
        f"{s['iterations']} iterations, {s['num_elites']} elites, {s['num_pi_trajs']} policy trajectories (reduced "
        f"alike for CPU time). TD-MPC2's trainer changed only to size its buffer to the data and evaluate these "
        f"three tasks (bench/tdmpc2_offline.py). Mean over seeds, lowest and highest seed in brackets.",
        "",
        "| task | updates | " + " | ".join(LABELS[a] for a in by_arm) + " |",
        "|---|---:|" + "---|" * len(by_arm),
    ]
    for task in TASKS:
        for p in points:
            cells = []
            for rs in by_arm.values():
                vals = [e["returns"][task] for r in rs for e in r["evaluations"] if e["updates"] == p]
                cells.append(
                    f"{statistics.mean(vals):.1f} [{min(vals):.0f}-{max(vals):.0f}] (n={len(vals)})" if vals else ""
                )
            lines.append(f"| {task} | {p:,} | " + " | ".join(cells) + " |")
    lines += ["", "| arm | seed | wall-clock (min) | finished | machine |", "|---|---:|---:|---|---|"]
    for arm, rs in by_arm.items():
        for r in sorted(rs, key=lambda r: r["seed"]):
            lines.append(
                f"| {LABELS[arm]} | {r['seed']} | {r['wall_clock_s'] / 60:.0f} | {r['finished']} | {r['machine']} |"
            )
    lines += ["", "Commands (from the repository root; the tdmpc2 arm runs in its run directory):", ""]
    lines += [f"- {arm}: `{rs[0]['command']}`" for arm, rs in by_arm.items()]
    md = RESULTS.parent / "parity_offline.md"  # bench/results/parity_offline.md (--smoke: beside its runs)
    md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {md}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--tdmpc2", help="TD-MPC2's checkout or its tdmpc2/ folder, CPU-patched")
    p.add_argument("--extra-path", action="append", default=[], help="import paths for the tdmpc2 arm")
    p.add_argument("--runs", default=str(MAIN / "runs" / "parity_offline"), help="where the data and runs go")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side (one core each)")
    p.add_argument("--commit", action="store_true", help="git-commit each finished run's result file")
    p.add_argument("--report", action="store_true", help="only write the table")
    p.add_argument("--smoke", action="store_true", help="a minutes-long run of every stage (not for results)")
    args = p.parse_args()
    if args.smoke:
        global RESULTS
        DATA.update(steps_per_task=1_000, num_samples=32, num_elites=4, iterations=1, num_pi_trajs=4)
        SETTINGS.update(updates=20, eval_freq=10, eval_episodes=1, num_samples=32, num_elites=4, iterations=1)
        SETTINGS.update(num_pi_trajs=4, batch_size=32)
        RESULTS = Path(args.runs).resolve() / "results"
    if args.report:
        report()
        return
    run_all(args)


if __name__ == "__main__":
    main()
