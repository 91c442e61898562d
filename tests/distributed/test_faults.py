"""The fault-injection suite (bench/faults.py, smaller): real SIGKILLs of a shard writer at each
named point of its commit and at random moments while a reader process samples; of a shard actor's
and an env runner's process inside a running Ray job; of a whole job during a shard commit and
during a checkpoint write. Each time: nothing committed is lost or changed, nothing is stored
twice, nothing uncommitted is visible, and the writer or job carries on."""
import pytest

from bench.faults import C, writer_scenario


def _assert_clean(tally):
    assert tally.kills > 0 and tally.committed > 0, tally
    assert tally.clean, "\n".join(tally.problems)


def test_writer_killed_at_each_commit_point_with_a_reader_sampling(tmp_path):
    tally = writer_scenario(tmp_path, "points", ["chunk-data", "index", "commit-record", "eviction"],
                            capacity=4 * C)
    _assert_clean(tally)
    assert tally.kills == 4


@pytest.mark.slow
def test_writer_killed_at_random_moments_with_a_reader_sampling(tmp_path):
    _assert_clean(writer_scenario(tmp_path, "random moments", [None] * 8, seed=1))
