"""What a shard promises against retries, idle writers, power loss and damaged data."""
import logging
import os
import time

import numpy as np
import pytest

from distributed.replay import layout
from distributed.replay.actor import ReplayShardActor, remote_class
from distributed.replay.reader import ShardReader
from distributed.replay.synthetic import synthetic_episode
from distributed.replay.verify import verify_shard
from distributed.replay.writer import ShardWriter

O, A = 5, 2


def _episodes(first, n, producer="runner0-x", length=20):
    out = []
    for i in range(first, first + n):
        e = synthetic_episode(i, obs_dim=O, action_dim=A, length=length, task=i % 2)
        out.append({**e, "source": (producer, i)})
    return out


def test_handed_episodes_are_committed_within_the_flush_interval_without_another_call(tmp_path):
    actor = ReplayShardActor(tmp_path / "s", obs_dim=O, action_dim=A, chunk_len=1024, flush_every_s=0.3)
    try:
        actor.add_episodes(_episodes(0, 2))
        assert ShardReader(tmp_path / "s").num_episodes == 0  # below a chunk, before the interval
        deadline = time.time() + 10
        while ShardReader(tmp_path / "s").num_episodes < 2 and time.time() < deadline:
            time.sleep(0.1)
        assert ShardReader(tmp_path / "s").num_episodes == 2  # the timer committed them
    finally:
        actor.close()


def test_a_retried_insert_is_stored_once_also_after_the_shard_restarts(tmp_path):
    actor = ReplayShardActor(tmp_path / "s", obs_dim=O, action_dim=A, chunk_len=64, flush_every_s=100)
    batch = _episodes(0, 3)
    assert len(actor.add_episodes(batch)) == 3
    assert actor.add_episodes(batch) == []  # the same call again (a retry): nothing added
    actor.flush()
    actor.writer.close()  # the process dies after the commit; the caller retries on the restarted actor
    actor._stop.set()
    again = ReplayShardActor(tmp_path / "s", obs_dim=O, action_dim=A, chunk_len=64, flush_every_s=100)
    assert again.add_episodes(batch + _episodes(3, 2)) == [3, 4]  # only the two new ones
    assert again.add_episodes(_episodes(0, 1, producer="runner0-y")) == [5]  # another incarnation's numbering
    again.close()
    assert verify_shard(tmp_path / "s").episodes == 6


def test_a_commit_syncs_every_new_directory_and_array_record_before_the_commit_record(tmp_path, monkeypatch):
    w = ShardWriter(tmp_path / "s", obs_dim=O, action_dim=A, chunk_len=16, durable=True)
    e = synthetic_episode(0, obs_dim=O, action_dim=A, length=10, task=7)  # a new chunk and a new task array
    opened = []
    real_open = os.open

    def recording_open(path, flags, *a, **kw):
        opened.append(os.fspath(path))
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(layout.os, "open", recording_open)
    w.add_episode(e["obs"], e["action"], e["reward"], e["terminated"], e["truncated"], 7)
    w.flush()
    monkeypatch.undo()
    w.close()
    shard = str(tmp_path / "s")
    record = opened.index(f"{shard}/zarr.json")
    before = set(opened[:record])
    for must in ("obs/c/0", "obs/c/0/0", "obs/c", "obs/zarr.json", "tasks/7", "tasks/7/zarr.json", "tasks", "episodes/length"):
        assert f"{shard}/{must}" in before, f"{must} is not synced before the commit record"


@pytest.mark.ray
def test_a_damaged_shard_is_set_aside_by_the_job_source_and_named(tmp_path, ray_session, caplog):
    ray = ray_session
    from distributed.batches import ShardActorSource

    shard = remote_class()
    actors = [shard.options(num_cpus=0).remote(str(tmp_path / f"s{i}"), obs_dim=O, action_dim=A, chunk_len=16,
                                               cache_bytes=0) for i in range(2)]
    try:
        for i, a in enumerate(actors):
            ray.get(a.add_episodes.remote(_episodes(10 * i, 4, producer=f"p{i}")))
            ray.get(a.flush.remote())
        chunk = tmp_path / "s1" / "obs" / "c" / "1" / "0"
        chunk.write_bytes(b"not a zarr chunk")  # a damaged chunk on disk
        source = ShardActorSource(actors, np.ones((2, A), np.float32), balance="uniform")
        rng = np.random.default_rng(0)
        with caplog.at_level(logging.ERROR, logger="distributed.batches"):
            for _ in range(20):
                batch = source.sample(32, 3, rng)
                assert batch["obs"].shape == (4, 32, O)
        assert list(source.failed) == [1] and "s1" in source.failed[1] and "obs" in source.failed[1]
        assert any("set aside" in r.message for r in caplog.records)
    finally:
        for a in actors:
            ray.kill(a)


def test_an_episode_sent_again_after_a_later_retried_call_is_stored_once(tmp_path):
    """A restarted shard gets a retried later call (sequences 3, 4) before the runner sends again
    what the old incarnation lost (1, 2): the earlier ones are stored, nothing twice."""
    actor = ReplayShardActor(tmp_path / "s", obs_dim=O, action_dim=A, chunk_len=64, flush_every_s=100)
    batch = _episodes(0, 5)
    assert actor.add_episodes(batch[:1]) == [0]
    actor.flush()
    assert actor.add_episodes(batch[3:]) == [1, 2]  # 1 and 2 went to the incarnation that died
    actor.flush()
    assert actor.committed("runner0-x")[1:] == (4, [1, 2])
    assert actor.add_episodes(batch) == [3, 4]  # the runner sends everything not committed
    actor.flush()
    assert actor.committed("runner0-x")[1:] == (4, [])
    actor.close()
    again = ReplayShardActor(tmp_path / "s", obs_dim=O, action_dim=A, chunk_len=64, flush_every_s=100)
    assert again.add_episodes(batch) == []  # the gaps are filled in the commit record too
    again.close()
    assert verify_shard(tmp_path / "s").episodes == 5


@pytest.mark.ray
@pytest.mark.slow
def test_a_job_with_a_corrupt_chunk_finishes_and_names_the_shard_and_chunk(tmp_path, ray_session):
    from distributed.config import compose
    from distributed.loop import run

    args = ["preset=smoke", "task='cartpole-balance,pendulum-swingup'", "num_runners=2", "partial_episodes=false",
            "max_episode_steps=40", "seed_steps=200", "utd=0.2", "chunk_len=64", "shard_cache_mb=0",
            "balance=uniform", f"run_dir={tmp_path}/run"]
    run(compose("mt80", args + ["steps=400"]))
    chunk = tmp_path / "run" / "replay" / "shard-001" / "obs" / "c" / "1" / "0"
    assert chunk.exists()
    chunk.write_bytes(b"not a zarr chunk")  # damaged on disk between two sessions of the job
    summary = run(compose("mt80", args + ["steps=1000"]))  # resumes; learners sample the damaged shard
    assert summary["env_steps"] >= 1000 and summary["updates"] > 0
    (shard, why), = summary["shards_set_aside"].items()
    assert "shard-001" in why and "chunk 1" in why and "'obs'" in why
    assert "set aside" in (tmp_path / "run" / "eval.md").read_text()
