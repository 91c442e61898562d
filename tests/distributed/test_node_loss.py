"""Node loss on the simulated cluster (distributed/testing/cluster.py), the main job run as a user runs it
(`launch/mt80.py`, RAY_ADDRESS set, its own process): a worker node is removed without grace mid-run and a
fresh node joins. The job finishes with exit 0, summary.json names the loss, every episode committed before
the loss is still in the store byte for byte, none is stored twice, and the checkpoint's counters equal the
store. Every simulated node shares this machine's disk, so a shard restarted on another node reopens its data."""

import json
import re
import subprocess
import sys

import pytest

from distributed.testing.cluster import REPO
from distributed.testing.node_loss import lose_a_node_mid_run


@pytest.mark.slow
@pytest.mark.ray
def test_losing_the_learners_node_costs_updates_not_the_run(ray_cluster, tmp_path):
    summary, placement, console, lost = lose_a_node_mid_run(ray_cluster, tmp_path, "learner-0")
    (line,) = [i for i in summary["incidents"] if "learner died" in i]
    assert "rebuilt from the last checkpoint" in line and "updates lost" in line
    assert f"the group ran on node {lost[:8]}" in line  # the lost node, named
    assert console.count(f"latentfleet: {line}") == 1
    assert summary["updates"] >= 0.05 * (2400 - 400) - 20  # the smoke preset's ratio is met again after the rebuild


@pytest.mark.slow
@pytest.mark.ray
def test_losing_a_node_of_runners_and_shards_restarts_them_elsewhere(ray_cluster, tmp_path):
    summary, placement, console, lost = lose_a_node_mid_run(ray_cluster, tmp_path, "shard-001")
    on_lost = [a for a, n in placement["actors"].items() if n == lost]
    assert "shard-001" in on_lost and any(a.startswith("runner") for a in on_lost), placement
    now = json.loads((tmp_path / "run" / "placement.json").read_text())  # follows the restarts
    assert all(now["actors"][a] != lost for a in on_lost), (on_lost, now)
    (line,) = [i for i in summary["incidents"] if "shard-001 was restarted" in i]
    assert "reopened its store from storage" in line and "none lost with it" in line
    assert summary["shards_set_aside"] == {} and summary["replay_quarantine"] == []
    assert summary["episodes"] > 0


@pytest.mark.slow
@pytest.mark.ray
def test_a_shard_restarted_where_its_storage_is_not_reachable_names_the_episodes_lost(ray_cluster, tmp_path):
    summary, placement, console, lost = lose_a_node_mid_run(ray_cluster, tmp_path, "shard-001", disk_lost=True)
    (line,) = [i for i in summary["incidents"] if "shard-001" in i and "without its data" in i]
    assert "committed episodes lost (taken off the counters)" in line and "not reachable" in line
    assert console.count(f"latentfleet: {line}") == 1
    lost_n = int(re.search(r"; (\d+) committed episodes lost", line).group(1))
    assert lost_n > 0  # it had committed some
    (entry,) = [e for e in summary["incident_details"] if e["kind"] == "shard_data_lost"]
    assert entry["shard"] == "shard-001" and entry["episodes_lost"] == lost_n
    # the counters equal the store (checked above): the episodes the shard lost were taken off, and the run went on
    assert summary["episodes"] > 0 and summary["failures"] == []


@pytest.mark.slow
@pytest.mark.ray
def test_two_learner_ranks_on_two_nodes_one_node_lost_the_group_is_rebuilt(ray_cluster, tmp_path):
    # a rank needs more than half a worker's CPU, so PACK cannot put both on one node: one rank per node
    # the replacement node is bigger: the actors restarted from the lost node may take the survivor's spare room
    # first, and a rank needs 0.55 of a node
    summary, placement, console, lost = lose_a_node_mid_run(
        ray_cluster,
        tmp_path,
        "learner-1",
        "num_learners=2",
        "cpus_per_learner=0.55",
        "cpus_per_evaluator=0.1",
        fresh_cpus=2,
    )
    assert placement["actors"]["learner-0"] != placement["actors"]["learner-1"], placement
    (line,) = [i for i in summary["incidents"] if "learner died" in i]
    assert "group of 2 rank(s) was rebuilt" in line
    assert summary["updates"] >= 0.05 * (2400 - 400) - 20


@pytest.mark.slow
@pytest.mark.ray
def test_the_cluster_presets_shape_runs_end_to_end_scaled_down(ray_cluster, tmp_path):
    # configs/preset/cluster.yaml (many runners, several shards, a learner group) with its sizes and devices
    # scaled to two 1-CPU nodes by overrides; everything else is the preset's
    run_dir = tmp_path / "run"
    scaled = [
        "preset=cluster",
        "task='cartpole-balance,cartpole-swingup,pendulum-swingup,reacher-easy'",
        "device=cpu",
        "runner_device=cpu",
        "precision=fp32",
        "model_size=tiny",
        "num_runners=4",
        "num_shards=3",
        "num_learners=2",
        "envs_per_task=1",
        "gpus_per_runner=0",
        "gpus_per_learner=0",
        "cpus_per_runner=0.2",
        "cpus_per_learner=0.25",
        "cpus_per_shard=0.05",
        "cpus_per_evaluator=0.1",
        "batch_size=32",
        "utd=0.1",
        "steps=800",
        "seed_steps=400",
        "max_episode_steps=50",
        "eval_freq=100000",
        "eval_episodes=1",
        "eval_max_steps=5",
        "checkpoint_freq=400",
        "diagnostics=false",
        "wandb_mode=disabled",
        "progress=false",
        "planner.iterations=1",
        "planner.num_samples=16",
        "planner.num_elites=4",
        "planner.num_pi_trajs=4",
        "storage_shared=true",
    ]
    out = subprocess.run(
        [sys.executable, str(REPO / "launch" / "mt80.py"), *scaled, f"run_dir={run_dir}"],
        cwd=REPO,
        env=ray_cluster.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    placement = json.loads((run_dir / "placement.json").read_text())
    runners = {placement["actors"][f"runner-{i}"] for i in range(4)}
    shards = {placement["actors"][f"shard-{i:03d}"] for i in range(3)}
    assert len(runners) == 2 and len(shards) == 2, placement  # spread over both worker nodes
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["failures"] == [] and summary["tasks_with_episodes"] == 4 and summary["updates"] >= 30
