"""What losing a node costs the main job: time until it runs again, updates lost, env steps/s before and after.

    .venv/bin/python bench/node_loss.py                 # lose the learner's node
    .venv/bin/python bench/node_loss.py --holding shard-001 --steps 6000

Starts the simulated cluster of the tests (distributed/testing/cluster.py: a head with 0 CPUs and two 1-CPU
worker nodes on this machine), runs `launch/mt80.py` on it as a user would (RAY_ADDRESS set), and once the run
has a checkpoint and --after env steps, removes the node holding actor --holding without grace and adds a fresh
one. It watches metrics.jsonl while the job runs and prints: the placement the job printed, the incident lines,
seconds from the node's removal to the first update after it, updates lost (the job's own count), and env steps
per second over the --window seconds before the loss and after the first update following it. Nothing is
asserted; the job's exit status is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _last(path: Path, kind: str) -> dict | None:
    if not path.exists():
        return None
    rows = [json.loads(x) for x in path.read_text().splitlines() if f'"kind": "{kind}"' in x and x.endswith("}")]
    return rows[-1] if rows else None


def _rate(samples: list[tuple[float, int]], t0: float, t1: float) -> float | None:
    """Env steps per second between wall times t0 and t1 from (wall time, env steps) samples."""
    inside = [(t, s) for t, s in samples if t0 <= t <= t1]
    if len(inside) < 2 or inside[-1][0] == inside[0][0]:
        return None
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--holding", default="learner-0", help="the actor whose node is lost (placement.json name)")
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--after", type=int, default=2400, help="env steps (and a checkpoint) before the loss")
    p.add_argument("--window", type=float, default=30.0)
    p.add_argument("overrides", nargs="*", help="more launch/mt80.py overrides")
    args = p.parse_args()

    from distributed.testing.cluster import SimulatedCluster

    work = Path(tempfile.mkdtemp(prefix="node_loss"))
    run_dir, console_path = work / "run", work / "console.txt"
    job_args = [
        "preset=smoke",
        "task='cartpole-balance,cartpole-swingup'",
        "num_runners=2",
        "num_shards=2",
        f"steps={args.steps}",
        "seed_steps=400",
        "checkpoint_freq=800",
        "storage_shared=true",
        *args.overrides,
        f"run_dir={run_dir}",
    ]
    cluster = SimulatedCluster(workers=2, num_cpus=1)
    samples: list[tuple[float, int]] = []
    try:
        with open(console_path, "w") as console:
            job = subprocess.Popen(
                [sys.executable, str(REPO / "launch" / "mt80.py"), *job_args],
                cwd=REPO,
                env={**cluster.env, "OMP_NUM_THREADS": "1"},
                stdout=console,
                stderr=subprocess.STDOUT,
                text=True,
            )
            removed = first_update = rebuilt = None
            updates_at_loss = None
            while job.poll() is None:
                time.sleep(0.5)
                ep, tr = _last(run_dir / "metrics.jsonl", "episode"), _last(run_dir / "metrics.jsonl", "train")
                now = time.time()
                if ep:
                    samples.append((now, int(ep["step"])))
                if removed is None and ep and int(ep["step"]) >= args.after and (run_dir / "checkpoint.pt").exists():
                    placement = json.loads((run_dir / "placement.json").read_text())
                    node = placement["actors"][args.holding]
                    name = next(n for n, i in cluster.nodes.items() if i == node)
                    updates_at_loss = tr["updates"] if tr else 0
                    train_rows = sum(
                        1 for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"kind": "train"' in x
                    )
                    cluster.remove_node(name)
                    removed = time.time()
                    cluster.add_node()
                elif removed is not None and first_update is None:
                    if rebuilt is None and "latentfleet: a learner died" in console_path.read_text():
                        rebuilt = time.time()  # the group is back (the line is printed once it is)
                    rows = sum(
                        1 for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"kind": "train"' in x
                    )
                    # the first update of the new group (a learn call in flight at the loss may still report one)
                    if rows > train_rows and (rebuilt is not None or not args.holding.startswith("learner")):
                        first_update = time.time()
            code = job.wait()
    finally:
        cluster.stop()
    console = console_path.read_text()
    print(
        "".join(
            line + "\n" for line in console.splitlines() if line.startswith(("placement:", "  node ", "latentfleet:"))
        ),
        end="",
    )
    print(f"job exit status {code}; run directory {run_dir}")
    if removed is None:
        print("the node was never removed (the run ended first: raise --steps)")
        return 1
    summary = json.loads((run_dir / "summary.json").read_text())
    lost = [i for i in summary.get("incidents", []) if "updates lost" in i]
    print(
        f"node holding {args.holding} removed at update {updates_at_loss}; "
        + (f"learner group rebuilt (its line printed) {rebuilt - removed:.1f} s later; " if rebuilt else "")
        + (
            f"first update after that {first_update - removed:.1f} s after the removal"
            if first_update
            else "no update after it"
        )
    )
    print(f"updates lost (the job's count): {lost[0].rsplit('; ', 1)[-1] if lost else 'none reported'}")
    before = _rate(samples, removed - args.window, removed)
    after = _rate(samples, first_update, first_update + args.window) if first_update else None
    fmt = lambda r: "-" if r is None else f"{r:.1f}"  # noqa: E731
    print(
        f"env steps/s: {fmt(before)} in the {args.window:g} s before the loss, {fmt(after)} in the {args.window:g} s "
        f"after the first update following it; the whole run {summary.get('env_steps_per_s', 0):.1f}"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
