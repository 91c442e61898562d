"""The replay store on an S3-compatible server (moto, started by the s3_bucket fixture), through
Zarr's FsspecStore and s3fs, the code a run uses: writes, reopens exactly, samples, verifies; the
single writer is a lease (a second writer is refused, a dead writer's lease runs out); a writer
SIGKILLed at each point of the commit protocol loses only what it had not committed."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from distributed.replay.errors import WriterLockedError
from distributed.replay.layout import read_state
from distributed.replay.reader import ShardReader
from distributed.replay.synthetic import synthetic_episode
from distributed.replay.verify import verify_shard
from distributed.replay.writer import ShardWriter
from distributed.storage import storage_path

O, A, C = 5, 2, 32


def add(writer, n):
    return [
        writer.add_episode(**synthetic_episode(writer.next_episode_id, obs_dim=O, action_dim=A, max_len=60))
        for _ in range(n)
    ]


def test_shard_on_s3_commits_reopens_exactly_and_samples(s3_bucket, monkeypatch):
    monkeypatch.setenv("LATENTFLEET_LEASE_S", "3")
    shard = f"{s3_bucket}/run/replay/shard-000"
    with ShardWriter(shard, obs_dim=O, action_dim=A, chunk_len=C) as w:
        ids = add(w, 12)
        w.flush()
        ids += add(w, 5)
    info, commit = read_state(shard)
    assert commit.episodes == 17 and commit.next_episode_id == 17
    report = verify_shard(shard)
    assert report.episodes == 17
    # the objects are in the bucket, and nothing went to a local folder named like the URI
    fs = storage_path(shard).fs
    assert fs.exists(storage_path(shard).path + "/zarr.json")
    assert not os.path.exists("s3:")
    # reopened (a restarted shard, a resumed job): same counters, ids continue, nothing rewritten
    with ShardWriter(shard, obs_dim=O, action_dim=A, chunk_len=C) as w:
        assert w.commit.episodes == 17 and w.next_episode_id == 17
        more = add(w, 3)
    assert more == [17, 18, 19]
    r = ShardReader(shard)
    assert r.num_episodes == 20
    batch = r.sample(16, 3, np.random.default_rng(0))
    obs = batch["obs"]  # [H+1, B, O]: obs[..., 0] is the episode id, obs[..., 1] the row in it
    for b in range(obs.shape[1]):
        eid, row0 = int(obs[0, b, 0]), int(obs[0, b, 1])
        want = synthetic_episode(eid, obs_dim=O, action_dim=A, max_len=60)["obs"][row0 : row0 + 4]
        np.testing.assert_array_equal(obs[:, b], want)


def test_second_writer_is_refused_and_a_closed_lease_is_taken_at_once(s3_bucket, monkeypatch):
    monkeypatch.setenv("LATENTFLEET_LEASE_S", "3")
    shard = f"{s3_bucket}/shard"
    w = ShardWriter(shard, obs_dim=O, action_dim=A, chunk_len=C)
    with pytest.raises(WriterLockedError, match="live writer"):
        ShardWriter(shard, obs_dim=O, action_dim=A, chunk_len=C)  # waits out one lease, the holder renews
    add(w, 2)
    w.close()
    with ShardWriter(shard, obs_dim=O, action_dim=A, chunk_len=C) as w2:  # released: no wait
        assert w2.commit.episodes == 2


def test_stalled_writer_whose_lease_was_taken_writes_nothing_more(s3_bucket, monkeypatch):
    monkeypatch.setenv("LATENTFLEET_LEASE_S", "2")
    shard = f"{s3_bucket}/shard"
    w = ShardWriter(shard, obs_dim=O, action_dim=A, chunk_len=C)
    add(w, 2)
    w.flush()
    w._lock._stop.set()  # the renewing thread stops, as in a writer frozen past its lease
    w._lock._thread.join()
    w2 = ShardWriter(shard, obs_dim=O, action_dim=A, chunk_len=C)  # takes the expired lease
    add(w2, 1)
    w2.flush()
    with pytest.raises(WriterLockedError, match="taken over"):
        add(w, 3)  # a whole chunk fills (or the flush) and is refused before any object is written
        w.flush()
    assert read_state(shard)[1].episodes == 3  # the stalled writer's episodes never became visible
    w2.close()


WRITER = f"""
import sys
from distributed.replay.writer import ShardWriter
from distributed.replay.synthetic import synthetic_episode
w = ShardWriter(sys.argv[1], obs_dim={O}, action_dim={A}, chunk_len={C})
for _ in range(int(sys.argv[2])):
    w.add_episode(**synthetic_episode(w.next_episode_id, obs_dim={O}, action_dim={A}, max_len=60))
w.flush()
"""


@pytest.mark.parametrize("point", ["chunk-data", "index", "commit-record", "eviction"])
def test_writer_killed_at_each_point_loses_only_uncommitted(s3_bucket, monkeypatch, point):
    monkeypatch.setenv("LATENTFLEET_LEASE_S", "2")
    shard = f"{s3_bucket}/shard"
    with ShardWriter(shard, obs_dim=O, action_dim=A, chunk_len=C, capacity=None if point != "eviction" else 4 * C) as w:
        add(w, 6)
    before = read_state(shard)[1]
    env = {**os.environ, "LATENTFLEET_KILL_AT": point}
    code = WRITER if point != "eviction" else WRITER.replace("chunk_len=", f"capacity=4 * {C}, chunk_len=")
    proc = subprocess.run([sys.executable, "-c", code, shard, "40"], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    after = read_state(shard)[1]
    assert after.generation >= before.generation  # whatever was committed stays committed
    verify_shard(shard)  # every committed chunk decodes and matches the index
    with ShardWriter(
        shard, obs_dim=O, action_dim=A, chunk_len=C, capacity=None if point != "eviction" else 4 * C
    ) as w:  # waits out the dead writer's lease
        assert w.commit.generation == after.generation
        ids = add(w, 2)
    assert ids[0] == after.next_episode_id  # ids continue from the record: none reused
    report = verify_shard(shard)
    assert report.episodes == read_state(shard)[1].live_episodes


def test_a_commit_is_whole_chunk_puts_then_the_record_last_with_no_reads(s3_bucket, monkeypatch):
    """What a commit costs on S3 (each request a round trip): the chunk objects of the rows and of the
    indexes, written whole, then the commit record, last; no read-modify-write, no array zarr.json
    rewritten for a new shape (arrays grow ahead), no lease request while the lease is fresh. The
    requests are counted where s3fs sends them (the real client, talking to the moto server)."""
    import s3fs

    monkeypatch.setenv("LATENTFLEET_LEASE_S", "30")
    shard = f"{s3_bucket}/shard"
    sent = []
    real = s3fs.S3FileSystem._call_s3

    async def counted(self, method, *args, **kwargs):
        sent.append((method, kwargs.get("Key", "")))
        return await real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", counted)

    def add_two_tasks(w, n):  # episodes of tasks 0 and 1 only
        return [
            w.add_episode(
                **synthetic_episode(w.next_episode_id, obs_dim=O, action_dim=A, max_len=60, task=w.next_episode_id % 2)
            )
            for _ in range(n)
        ]

    with ShardWriter(shard, obs_dim=O, action_dim=A, chunk_len=C) as w:
        add_two_tasks(w, 3)
        w.flush()  # the first commit of tasks 0 and 1 creates their index arrays
        add_two_tasks(w, 3)
        sent.clear()
        w.flush()
        commit = list(sent)
        ids = add_two_tasks(w, 2)
    assert commit[-1] == ("put_object", "shard/zarr.json"), commit  # the record, last
    assert {m for m, _ in commit} == {"put_object"}, [
        x for x in commit if x[0] != "put_object"
    ]  # nothing read back, no lease renewal
    keys = [k for _, k in commit[:-1]]
    assert all("/c/" in k for k in keys), keys  # chunk objects only: no array zarr.json rewritten
    assert len(keys) == len(set(keys))  # each object once
    rows = {k.split("/")[1] for k in keys if not k.startswith(("shard/episodes/", "shard/tasks/"))}
    assert rows == {"obs", "action", "reward", "terminated", "truncated", "task", "episode", "step"}
    # what the grown-ahead arrays hold is exactly what was added: reopened, verified, sampled
    _, c = read_state(shard)
    assert c.episodes == 8 and ids == [6, 7]
    assert verify_shard(shard).episodes == 8
    r = ShardReader(shard)
    batch = r.sample(32, 3, np.random.default_rng(1))
    obs = batch["obs"]
    for b in range(obs.shape[1]):
        eid, row0 = int(obs[0, b, 0]), int(obs[0, b, 1])
        want = synthetic_episode(eid, obs_dim=O, action_dim=A, max_len=60, task=eid % 2)["obs"][row0 : row0 + 4]
        np.testing.assert_array_equal(obs[:, b], want)


def test_a_shard_actors_reader_takes_its_writers_commits_as_a_fresh_reader_reads_them(s3_bucket, monkeypatch):
    """The actor's reader adopts each commit from its writer instead of reading it back: what it then holds
    (live episodes, per-task ordinals, windows, counts) equals what a reader opening the bucket reads,
    through evictions (capacity) and a quarantined chunk."""
    from distributed.replay.actor import ReplayShardActor

    monkeypatch.setenv("LATENTFLEET_LEASE_S", "30")
    shard = f"{s3_bucket}/shard"
    actor = ReplayShardActor(shard, obs_dim=O, action_dim=A, chunk_len=C, capacity=6 * C, flush_every_s=1000)
    try:
        for round_ in range(6):
            eps = [
                dict(synthetic_episode(100 * round_ + i, obs_dim=O, action_dim=A, max_len=40, task=i % 3))
                for i in range(4)
            ]
            actor.add_episodes(eps)
            actor.flush()
            if round_ == 3:
                live = actor.reader._commit
                actor.writer.quarantine("obs", live.first_row // C, "damaged on purpose (test)")
                actor.flush()
                actor.add_episodes([])  # picks up the quarantine record
                assert actor.writer.commit.quarantine and actor.reader.quarantine
            fresh = ShardReader(shard)
            mine = actor.reader
            assert mine.generation == fresh.generation == actor.writer.commit.generation
            for k in ("id", "start", "length", "task"):
                np.testing.assert_array_equal(mine._episodes[k], fresh._episodes[k])
            assert {t: list(v) for t, v in mine._task_ordinals.items() if len(v)} == {
                t: list(v) for t, v in fresh._task_ordinals.items() if len(v)
            }
            assert mine.task_windows(3) == fresh.task_windows(3) and mine.num_transitions == fresh.num_transitions
        assert actor.writer.commit.first_row > 0  # evictions happened (the quarantined chunk went with them)
        batch = actor.sample(16, 3, seed=0)
        obs = batch["obs"]
        for b in range(obs.shape[1]):
            eid, row0 = int(obs[0, b, 0]), int(obs[0, b, 1])
            want = synthetic_episode(eid, obs_dim=O, action_dim=A, max_len=40, task=(eid % 100) % 3)["obs"]
            np.testing.assert_array_equal(obs[:, b], want[row0 : row0 + 4])
    finally:
        actor.close()
