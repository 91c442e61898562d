"""The main job on a Ray cluster of several nodes simulated on this machine (tests/distributed/cluster.py):
run as a user runs it, `python launch/mt80.py` with RAY_ADDRESS set, in a process of its own (this pytest
process may hold the session's Ray; one Ray per process). Every simulated node shares this machine's disk,
so the run directory is a local folder that every node reaches."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMALL_JOB = ["preset=smoke", "task='cartpole-balance,cartpole-swingup'", "num_runners=2", "num_shards=2",
             "steps=800", "seed_steps=400"]  # about 40 updates: enough to see the parts work together


def run_job(cluster, run_dir: Path, *overrides: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
    """launch/mt80.py on the cluster; its console output (stdout and stderr) is kept in run_dir's parent."""
    out = subprocess.run([sys.executable, str(REPO / "launch" / "mt80.py"), *SMALL_JOB, *overrides, f"run_dir={run_dir}"],
                         cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=timeout_s)
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
    printed = job.stdout[job.stdout.index("placement: "):].splitlines()
    assert printed[0].startswith(f"placement: 7 actors on {len(placement['nodes'])} node(s)")
    names = {v: k for k, v in ray_cluster.nodes.items()}
    for line, node in zip(printed[1:], placement["nodes"]):
        assert line.split()[:3] == ["node", node["node_id"][:8], names[node["node_id"]]], line
        assert line.split(": ", 1)[1].split() == node["actors"], line
    summary = json.loads((run_dir / "summary.json").read_text())
    # the two ranks trained together across the placement (the job checks they end with equal parameters)
    assert summary["failures"] == [] and summary["episodes"] > 0 and summary["updates"] > 0


@pytest.mark.slow
@pytest.mark.ray
def test_harness_removes_a_node_without_grace_and_adds_a_fresh_one(ray_cluster):
    probe = ("import json, ray; ray.init(log_to_driver=False); "
             "print(json.dumps({n['NodeID']: n['Alive'] for n in ray.nodes()}))")

    def alive() -> dict:
        out = subprocess.run([sys.executable, "-c", probe], env=ray_cluster.env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    before = dict(ray_cluster.nodes)
    gone = ray_cluster.remove_node("w1")
    fresh = ray_cluster.add_node()
    assert fresh not in before and set(ray_cluster.nodes) == {"w2", fresh}
    state = alive()
    # GCS saw the killed node die (health checks), and the fresh one join
    assert state[gone] is False and state[ray_cluster.nodes[fresh]] is True and state[before["w2"]] is True
