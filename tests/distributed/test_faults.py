"""The fault-injection suite (distributed/testing/faults.py, as bench/faults.py runs it, smaller): real
SIGKILLs of a shard writer at each named point of its commit and at random moments while a reader process
samples; of a shard actor's and an env runner's process inside a running Ray job; of a whole job during a
shard commit and during a checkpoint write. Each time: nothing committed is lost or changed, nothing is
stored twice, nothing uncommitted is visible, and the writer or job carries on (a killed actor is
restarted in a new process; a resumed job continues the checkpoint's counters, rate limiter and every
learner rank's RNG streams)."""

import pytest

from distributed.testing.faults import C, corrupt_chunk_scenario, writer_scenario


def _assert_clean(tally):
    assert tally.kills > 0 and tally.committed > 0, tally
    assert tally.clean, "\n".join(tally.problems)


def test_writer_killed_at_each_commit_point_with_a_reader_sampling(tmp_path):
    tally = writer_scenario(tmp_path, "points", ["chunk-data", "index", "commit-record", "eviction"], capacity=12 * C)
    _assert_clean(tally)
    assert tally.kills == 4


def test_a_corrupt_chunk_costs_exactly_its_episodes_while_the_shard_serves_and_takes_more(tmp_path):
    tally = corrupt_chunk_scenario(tmp_path, episodes=40, more=10, batches=100)
    _assert_clean(tally)  # quarantined == the chunk's episodes, no other loss, every window its episode's rows
    assert tally.committed == 50 and "quarantined: 0" not in tally.scenario


@pytest.mark.slow
def test_writer_killed_at_random_moments_with_a_reader_sampling(tmp_path):
    _assert_clean(writer_scenario(tmp_path, "random moments", [None] * 8, seed=1))


@pytest.mark.ray
def test_shard_actor_and_env_runner_processes_killed_inside_a_running_job(ray_session, tmp_path):
    from distributed.testing.faults import actors_scenario

    tally = actors_scenario(tmp_path, steps=2000)
    _assert_clean(tally)
    assert tally.kills == 2 and tally.counters == "match"


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("point", ["checkpoint-write:2", "commit-record:10"])
def test_a_whole_job_killed_at_a_checkpoint_write_or_a_shard_commit_resumes(ray_session, tmp_path, point):
    from distributed.testing.faults import job_scenario

    # checkpoints come every 400 env steps (the first at 400-420: steps advance a collect call at a time);
    # the kill lands in the 2nd checkpoint.pt write or in the 10th commit of a shard (~420-800 steps in
    # development runs). The first checkpoint must hold updates: learning may start at 300 stored steps
    # (JOB's seed_steps), and max_lag=5 holds collection there until the learners have made >= 10 of the
    # 15 updates utd=0.05 allows (without it, a slow first learner call on a busy machine left 0 updates
    # in the first checkpoint: CI of session 9)
    tally = job_scenario(tmp_path, point, resume_steps=300, checkpoint_freq=400, overrides=("max_lag=5",))
    print(point, "resumed from (env steps, updates)", tally.resumed_at)
    _assert_clean(tally)
    if point.startswith("checkpoint-write"):  # resumed from the first checkpoint, which holds updates
        assert tally.resumed_at is not None and 400 <= tally.resumed_at[0] < 800 and tally.resumed_at[1] > 0, tally
    assert tally.counters == "match"
