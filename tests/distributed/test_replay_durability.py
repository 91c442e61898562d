"""What a shard promises against retries, idle writers, power loss and damaged data."""

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
    for must in (
        "obs/c/0",
        "obs/c/0/0",
        "obs/c",
        "obs/zarr.json",
        "tasks/7",
        "tasks/7/zarr.json",
        "tasks",
        "episodes/length",
    ):
        assert f"{shard}/{must}" in before, f"{must} is not synced before the commit record"


@pytest.mark.ray
def test_a_shard_actor_quarantines_a_damaged_chunks_episodes_and_keeps_serving_and_taking(tmp_path, ray_session):
    ray = ray_session
    from distributed.batches import ShardActorSource

    shard = remote_class()
    actors = [
        shard.options(num_cpus=0).remote(str(tmp_path / f"s{i}"), obs_dim=O, action_dim=A, chunk_len=16, cache_bytes=0)
        for i in range(2)
    ]
    try:
        for i, a in enumerate(actors):
            ray.get(a.add_episodes.remote(_episodes(10 * i, 4, producer=f"p{i}")))
            ray.get(a.flush.remote())
        # the shard's four 20-row episodes lie at rows 0-19, 20-39, ...: chunk 1 (rows 16-31) holds rows of two
        (tmp_path / "s1" / "obs" / "c" / "1" / "0").write_bytes(b"not a zarr chunk")  # damaged on disk
        source = ShardActorSource(actors, np.ones((2, A), np.float32), balance="uniform")
        rng = np.random.default_rng(0)
        for _ in range(20):
            batch = source.sample(32, 3, rng)
            assert batch["obs"].shape == (4, 32, O)
        assert source.failed == {}
        (q,) = source.damage()["quarantine"]
        assert (q["shard"], q["array"], q["chunk"], q["episodes_lost"], q["transitions_lost"]) == (
            str(tmp_path / "s1"),
            "obs",
            1,
            2,
            38,
        )
        stats = ray.get(actors[1].stats.remote())
        assert (stats["episodes"], stats["transitions"]) == (2, 38)
        ray.get(actors[1].add_episodes.remote(_episodes(20, 2, producer="p1")))  # still taking episodes
        ray.get(actors[1].flush.remote())
        assert ray.get(actors[1].stats.remote())["episodes"] == 4
        tasks = ray.get(actors[1].task_windows.remote(3))
        assert sum(tasks.values()) == 4 * 17  # four live 20-row episodes, 17 windows of 4 rows each
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


def _overlapping(shard, chunk: int) -> set[int]:
    """Ids of the committed live episodes with rows in `chunk` of `shard`, from its own index."""
    import zarr

    info, c = layout.read_state(shard)
    g = zarr.open_group(str(shard), mode="r")
    ep = {k: g["episodes"][k][c.first_episode : c.episodes] for k in ("id", "start", "length")}
    return set(ep["id"][layout.episodes_in_chunk(ep["start"], ep["length"], chunk, info.chunk_len)].tolist())


def _one_line_each(where: str, line: str) -> None:
    assert sum(1 for row in where.splitlines() if line in row) == 1, f"{line!r} is not exactly one line of:\n{where}"


@pytest.mark.slow
@pytest.mark.parametrize("backend", [pytest.param("ray", marks=pytest.mark.ray), "local"])
def test_a_job_with_a_corrupt_chunk_loses_exactly_its_episodes_and_says_so_once(tmp_path, request, capfd, backend):
    from distributed.config import compose
    from distributed.loop import run

    if backend == "ray":
        request.getfixturevalue("ray_session")
        shard = tmp_path / "run" / "replay" / "shard-001"
        args = [
            "preset=smoke",
            "task='cartpole-balance,pendulum-swingup'",
            "num_runners=2",
            "partial_episodes=false",
            "balance=uniform",
            "shard_cache_mb=0",
        ]
        config = "mt80"
    else:
        shard = tmp_path / "run" / "replay" / "shard-000"
        args, config = (
            [
                "task=cartpole-balance",
                "model_size=tiny",
                "progress=false",
                "wandb_mode=disabled",
                "planner.iterations=1",
                "planner.num_samples=16",
                "planner.num_elites=4",
                "planner.num_pi_trajs=2",
                "eval_episodes=1",
                "shard_cache_mb=0",
            ],
            "train",
        )
    args += ["max_episode_steps=40", "seed_steps=200", "utd=0.2", "chunk_len=64", f"run_dir={tmp_path}/run"]
    run(compose(config, args + ["steps=400"]))
    lost = _overlapping(shard, 1)
    _, before = layout.read_state(shard)
    assert lost  # chunk 1 (rows 64-127) holds rows of one to three 41-row episodes
    (shard / "obs" / "c" / "1" / "0").write_bytes(b"not a zarr chunk")  # damaged on disk between two sessions
    capfd.readouterr()
    summary = run(compose(config, args + ["steps=1000"]))  # resumes; the learners sample the damaged chunk
    assert summary["env_steps"] >= 1000 and summary["updates"] > 0
    assert summary["shards_set_aside"] == {}
    (q,) = summary["replay_quarantine"]
    assert (q["shard"], q["array"], q["chunk"], q["episodes_lost"]) == (str(shard), "obs", 1, len(lost))
    (line,) = summary["incidents"]
    assert line == q["line"] and "chunk 1" in line and f"{len(lost)} episodes" in line and "\x1b" not in line
    _one_line_each((tmp_path / "run" / "eval.md").read_text(), line)
    _one_line_each(capfd.readouterr().err, line)
    report = verify_shard(shard)  # the rest of the shard is whole and kept receiving episodes
    _, after = layout.read_state(shard)
    assert report.quarantined_chunks == [1] and after.quarantined_ids() == lost
    assert after.episodes > before.episodes and report.episodes == after.episodes - after.first_episode - len(lost)


@pytest.mark.ray
@pytest.mark.slow
def test_a_job_sets_a_shard_with_unreadable_metadata_aside_whole_and_goes_on(tmp_path, ray_session, capfd):
    from distributed.config import compose
    from distributed.loop import run

    args = [
        "preset=smoke",
        "task='cartpole-balance,pendulum-swingup'",
        "num_runners=2",
        "partial_episodes=false",
        "max_episode_steps=40",
        "seed_steps=200",
        "utd=0.2",
        f"run_dir={tmp_path}/run",
    ]
    run(compose("mt80", args + ["steps=400"]))
    replay = tmp_path / "run" / "replay"
    (replay / "shard-001" / "zarr.json").write_text("{ not json")
    files = {p: p.read_bytes() for p in (replay / "shard-001").rglob("*") if p.is_file()}
    capfd.readouterr()
    summary = run(compose("mt80", args + ["steps=800"]))
    assert summary["env_steps"] >= 800 and summary["updates"] > 0
    (why,) = summary["shards_set_aside"].values()
    assert list(summary["shards_set_aside"]) == [str(replay / "shard-001")] and "cannot be opened" in why
    (line,) = summary["incidents"]
    _one_line_each(capfd.readouterr().err, line)
    assert {p: p.read_bytes() for p in (replay / "shard-001").rglob("*") if p.is_file()} == files  # untouched
    assert verify_shard(replay / "shard-002").episodes > 0  # a new shard took its place
