"""A worker node lost without grace while the main job runs on the simulated cluster (cluster.py), and the
checks every such run must pass: the job finishes with exit 0, every episode committed before the loss is still
in the store byte for byte, none is stored twice, the checkpoint's counters equal the store, and the console
shows no raw Ray dump. tests/distributed/test_node_loss.py and test_node_loss_s3.py use it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from agents.checkpoint import load_checkpoint
from distributed.storage import local_path, storage_path
from distributed.testing.cluster import REPO, SMALL_JOB, wait_for
from distributed.testing.faults import counted_per_task, shards_of, snapshot, store_per_task


def _committed(run_dir) -> dict:
    """shard -> {episode id: (first obs value, start, length, task, digest)} of what its commit record covers."""
    return {s.name: snapshot(s)[0] for s in shards_of(run_dir)}


def _remove_when_still(path: Path, timeout_s: float = 10.0) -> None:
    """Delete a directory that a dying process may still be writing into."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            shutil.rmtree(path)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def lose_a_node_mid_run(
    cluster,
    tmp_path: Path,
    holding: str,
    *overrides: str,
    fresh_cpus: float = 1,
    disk_lost: bool = False,
    run_dir: str | None = None,
    committed: dict | None = None,
) -> tuple[dict, dict, str, str]:
    """Run the job; once it has a checkpoint, remove the node that holds actor `holding` (placement.json) and
    add a fresh one of `fresh_cpus`. Returns (summary, placement at start, console, the lost node's id); checks
    the store. `disk_lost`: the shard `holding` had its store on the lost node's own disk (deleted with the
    node: the simulated nodes share one disk, so a node-local disk is the one fault made by hand here);
    every other shard must keep what it had. `run_dir`: where the run lives (default: tmp_path/run; an s3://
    URI for a run in a bucket); `committed`, if given, gets what the store held at the loss ("before") and
    at the end ("after")."""
    run = storage_path(run_dir or tmp_path / "run")
    console_path = tmp_path / "console.txt"
    with open(console_path, "w") as console:
        job = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "launch" / "mt80.py"),
                *SMALL_JOB,
                "steps=2400",
                "checkpoint_freq=600",
                *overrides,
                f"run_dir={run}",
            ],
            cwd=REPO,
            env=cluster.env,
            stdout=console,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            placement = wait_for(
                "placement.json",
                lambda: (run / "placement.json").exists() and json.loads((run / "placement.json").read_text()),
                job,
            )
            lost = placement["actors"][holding]
            name = next(n for n, i in cluster.nodes.items() if i == lost)
            wait_for("a checkpoint", lambda: (run / "checkpoint.pt").exists(), job, timeout_s=600)
            before = _committed(run)
            cluster.remove_node(name)
            if disk_lost:  # the dead node's worker processes may take a moment to exit: until then they write
                _remove_when_still(local_path(run / "replay" / holding))
            cluster.add_node(num_cpus=fresh_cpus)
            assert job.wait(timeout=900) == 0, console_path.read_text()[-4000:]
        finally:
            if job.poll() is None:
                job.kill()
    after = _committed(run)
    if committed is not None:
        committed.update(before=before, after=after)
    for shard, episodes in before.items():
        if disk_lost and shard == holding:
            continue
        gone = [e for e, v in episodes.items() if after.get(shard, {}).get(e) != v]
        assert not gone, f"{shard}: {len(gone)} episodes committed before the loss are gone or changed"
    digests = [v[4] for eps in after.values() for v in eps.values()]
    assert len(digests) == len(set(digests)), "an episode is stored twice"
    state = load_checkpoint(run)
    tasks = json.loads((run / "run.json").read_text())["tasks"]
    assert counted_per_task(state, tasks) == store_per_task(run), "the checkpoint's counters differ from the store"
    console = console_path.read_text()
    for raw in ("Traceback", "[state-dump]", "(pid=gcs_server)"):  # Ray's own dumps go to ray.log
        assert raw not in console, console[-3000:]
    assert not re.search(r"^(\x1b\[\d+m)?\(raylet\)", console, re.M), console[
        -3000:
    ]  # no raylet message as Ray prints it
    if "(all of it in" in console:  # a one-line gist of Ray's message on the console, all of it in ray.log
        assert "[state-dump]" in (run / "ray.log").read_text() or "marked dead" in (run / "ray.log").read_text()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] >= 2400 and summary["failures"] == [], summary
    return summary, placement, console, lost
