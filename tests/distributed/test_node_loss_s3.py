"""Node loss with the run in a bucket (issues 34 and 35): on the simulated cluster (distributed/testing/cluster.py)
whose nodes reach the moto S3 server of the s3_server fixture, the job runs with run_dir=s3://...; the node
holding a shard is removed without grace mid-run. The shard actor restarts on another node, reopens its
shard from the bucket once the dead writer's lease has run out (LATENTFLEET_LEASE_S, short here), and the job
finishes: every episode committed before the loss is still in the store byte for byte, none is stored twice,
and the checkpoint's counters equal the store (`lose_a_node_mid_run`, distributed/testing/node_loss.py)."""

import pytest

from distributed.storage import storage_path
from distributed.testing.cluster import REPO
from distributed.testing.node_loss import lose_a_node_mid_run

LEASE_S = 4


@pytest.fixture(scope="module")
def s3_cluster(s3_server):
    """A 3-node simulated cluster (head 0 CPUs, two 1-CPU workers) whose every process has the S3 server's
    endpoint and credentials in its environment, as every node of a real cluster needs (Ray does not forward
    the driver's environment to actors on other nodes), and a short writer lease."""
    pytest.importorskip("ray")
    from distributed.testing.cluster import SimulatedCluster

    cluster = SimulatedCluster(workers=2, num_cpus=1, env={**s3_server.environ, "LATENTFLEET_LEASE_S": str(LEASE_S)})
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.slow
@pytest.mark.ray
def test_losing_a_shards_node_with_the_store_in_a_bucket(s3_cluster, s3_bucket, tmp_path):
    run_dir = f"{s3_bucket}/run"
    store = {}
    summary, placement, console, lost = lose_a_node_mid_run(
        s3_cluster, tmp_path, "shard-001", run_dir=run_dir, committed=store
    )
    on_lost = [a for a, n in placement["actors"].items() if n == lost]
    assert "shard-001" in on_lost, placement
    assert summary["shards_set_aside"] == {} and summary["replay_quarantine"] == [] and summary["episodes"] > 0
    # the shard actor restarted on another node, took the dead writer's lease over and committed more
    assert not [i for i in summary["incidents"] if "without its data" in i]
    before, after = store["before"]["shard-001"], store["after"]["shard-001"]
    assert set(before) < set(after), (len(before), len(after))
    assert (storage_path(run_dir) / "replay" / "shard-001.writer.lease").exists()
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob("s3*"))  # nothing of the run on local disk
    assert not (REPO / "s3:").exists()  # (the job ran in the repository)
