"""Fixtures of the distributed tests."""

import pytest


@pytest.fixture(scope="module")
def ray_cluster():
    """A 3-node Ray cluster simulated on this machine (head with 0 CPUs, workers w1 and w2 with 1 CPU each),
    in a child process of its own: distributed/testing/cluster.py. Shared by a module's tests; a test that
    removes a node adds a fresh one if the module's later tests need two."""
    pytest.importorskip("ray")
    from distributed.testing.cluster import SimulatedCluster

    cluster = SimulatedCluster(workers=2, num_cpus=1)
    try:
        yield cluster
    finally:
        cluster.stop()
