"""The main job on a Ray cluster of several nodes simulated on this machine (distributed/testing/cluster.py):
run as a user runs it, `python launch/mt80.py` with RAY_ADDRESS set, in a process of its own (this pytest
process may hold the session's Ray; one Ray per process). Every simulated node shares this machine's disk,
so the run directory is a local folder that every node reaches."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distributed.testing.cluster import REPO, SMALL_JOB, wait_for


def run_job(cluster, run_dir: Path, *overrides: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
    """launch/mt80.py on the cluster; its console output (stdout and stderr) is kept in run_dir's parent."""
    out = subprocess.run(
        [sys.executable, str(REPO / "launch" / "mt80.py"), *SMALL_JOB, *overrides, f"run_dir={run_dir}"],
        cwd=REPO,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    (run_dir.parent / "console.txt").write_text(out.stdout + "\n--- stderr ---\n" + out.stderr)
    return out


@pytest.mark.slow
@pytest.mark.ray
def test_job_spreads_runners_and_shards_over_nodes_and_states_the_placement(ray_cluster, tmp_path):
    run_dir = tmp_path / "run"
    job = run_job(ray_cluster, run_dir, "num_learners=2")
    assert job.returncode == 0, f"exit {job.returncode}\n{job.stdout[-2000:]}\n{job.stderr[-3000:]}"
    assert f"cluster at {ray_cluster.address}" in job.stdout  # joined the cluster, not an embedded Ray
    placement = json.loads((run_dir / "placement.json").read_text())
    where = placement["actors"]
    assert sorted(where) == ["evaluator", "learner-0", "learner-1", "runner-0", "runner-1", "shard-000", "shard-001"]
    workers = set(ray_cluster.nodes.values())
    assert set(where.values()) <= workers, "an actor on the head node, which has no CPUs"
    assert where["runner-0"] != where["runner-1"], f"both runners on one node: {where}"
    assert where["shard-000"] != where["shard-001"], f"both shards on one node: {where}"
    assert where["learner-0"] == where["learner-1"], f"learner ranks not packed on one node (there is room): {where}"
    # the console states the same placement: a header, then one line per node with its short id and its actors
    printed = job.stdout[job.stdout.index("placement: ") :].splitlines()
    assert printed[0].startswith(f"placement: 7 actors on {len(placement['nodes'])} node(s)")
    names = {v: k for k, v in ray_cluster.nodes.items()}
    for line, node in zip(printed[1:], placement["nodes"], strict=False):
        assert line.split()[:3] == ["node", node["node_id"][:8], names[node["node_id"]]], line
        assert line.split(": ", 1)[1].split() == node["actors"], line
    summary = json.loads((run_dir / "summary.json").read_text())
    # the two ranks trained together across the placement (the job checks they end with equal parameters)
    assert summary["failures"] == [] and summary["episodes"] > 0 and summary["updates"] > 0


@pytest.mark.slow
@pytest.mark.ray
def test_harness_removes_a_node_without_grace_and_adds_a_fresh_one(ray_cluster):
    probe = (
        "import json, ray; ray.init(log_to_driver=False); "
        "print(json.dumps({n['NodeID']: n['Alive'] for n in ray.nodes()}))"
    )

    def alive() -> dict:
        out = subprocess.run(
            [sys.executable, "-c", probe], env=ray_cluster.env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    before = dict(ray_cluster.nodes)
    gone = ray_cluster.remove_node("w1")
    fresh = ray_cluster.add_node()
    assert fresh not in before and set(ray_cluster.nodes) == {"w2", fresh}
    # GCS sees the killed node die within a few 1 s health checks (Ray's defaults: 5 missed checks 3 s apart), the fresh one join
    deadline, state = time.monotonic() + 20, alive()
    while state[gone] and time.monotonic() < deadline:
        time.sleep(1)
        state = alive()
    assert state[gone] is False and state[ray_cluster.nodes[fresh]] is True and state[before["w2"]] is True


def _eval_rows(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"kind": "eval"' in line)


@pytest.mark.slow
@pytest.mark.ray
def test_evaluator_survives_the_loss_of_its_node(ray_cluster, tmp_path):
    # the evaluator alone on a node of its own kind (a custom resource, no CPUs: no runner or shard goes there), so
    # the loss is the evaluator's only; the replacement node that joins has the same resource
    eval_node = ray_cluster.add_node(num_cpus=0, resources={"eval_node": 1})
    run_dir = tmp_path / "run"
    console = open(tmp_path / "console.txt", "w")
    job = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "launch" / "mt80.py"),
            *SMALL_JOB,
            "steps=3000",
            "eval_freq=100",
            "cpus_per_evaluator=0",
            "+resources_per_evaluator.eval_node=1",
            f"run_dir={run_dir}",
        ],
        cwd=REPO,
        env=ray_cluster.env,
        stdout=console,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        placement = wait_for(
            "placement.json",
            lambda: (run_dir / "placement.json").exists() and json.loads((run_dir / "placement.json").read_text()),
            job,
        )
        lost_id = ray_cluster.nodes[eval_node]
        assert [n["actors"] for n in placement["nodes"] if n["node_id"] == lost_id] == [["evaluator"]], placement
        where_learner = placement["actors"]["learner-0"]
        before = wait_for("evaluation before the loss", lambda: _eval_rows(run_dir), job)
        ray_cluster.remove_node(eval_node)
        replacement = ray_cluster.add_node(num_cpus=0, resources={"eval_node": 1})
        assert job.wait(timeout=600) == 0, (tmp_path / "console.txt").read_text()[-3000:]
    finally:
        if job.poll() is None:
            job.kill()
        console.close()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["failures"] == [] and summary["last_eval_return"] is not None
    lines = [x for x in summary["incidents"] if x.startswith("evaluator ")]
    assert len(lines) == 1, summary["incidents"]  # the loss reported once, naming the lost node
    # "lost with its node ..." when an evaluation was in flight, "restarted: it ran on ..." when none was
    assert f"node {lost_id[:8]} ({eval_node}, 127.0.0.1)" in lines[0], lines[0]
    out = (tmp_path / "console.txt").read_text()
    assert out.count(f"latentfleet: {lines[0]}") == 1  # the same line once on the console
    assert _eval_rows(run_dir) > before, "no evaluation after the loss"  # the restarted evaluator evaluates
    # the evaluations after the loss ran on the replacement node, and placement.json says so
    moved = json.loads((run_dir / "placement.json").read_text())
    assert moved["actors"]["evaluator"] == ray_cluster.nodes[replacement], moved
    assert all(n["node_id"] != lost_id for n in moved["nodes"]) and moved["actors"]["learner-0"] == where_learner
