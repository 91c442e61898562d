"""ReplayShardActor: the plain class in-process, and the same class as a Ray actor."""

import numpy as np
import pytest

from agents.batch import BATCH_KEYS
from distributed.replay.actor import ReplayShardActor, remote_class
from distributed.replay.synthetic import synthetic_episode
from distributed.replay.verify import verify_shard

O, A = 5, 2


def episodes(first_id, n, length=30):
    return [synthetic_episode(first_id + i, obs_dim=O, action_dim=A, length=length, task=i % 2) for i in range(n)]


def test_plain_actor_adds_flushes_samples_and_reports(tmp_path):
    actor = ReplayShardActor(tmp_path / "s", obs_dim=O, action_dim=A, chunk_len=64, seed=0)
    assert actor.add_episodes(episodes(0, 3)) == [0, 1, 2]
    assert actor.stats()["pending_rows"] > 0  # below a chunk: committed on flush
    actor.flush()
    stats = actor.stats()
    assert (stats["episodes"], stats["transitions"], stats["pending_rows"]) == (3, 87, 0)
    assert stats["task_counts"] == {0: 58, 1: 29}
    batch = actor.sample(16, 3, balance="task", action_masks=np.ones((2, A)))
    assert tuple(batch) == BATCH_KEYS and batch["obs"].shape == (4, 16, O)
    bad = episodes(3, 2)
    bad[1]["action"] = bad[1]["action"][:, :1]
    with pytest.raises(ValueError, match=r"episode 1: action has shape \(30, 1\)"):
        actor.add_episodes(bad)
    assert actor.stats()["next_episode_id"] == 3  # the good episode before it was not added either
    actor.close()
    assert verify_shard(tmp_path / "s").episodes == 3


def test_flush_interval_makes_data_sampleable(tmp_path):
    actor = ReplayShardActor(tmp_path / "s", obs_dim=O, action_dim=A, chunk_len=1024, flush_every_s=0.0)
    actor.add_episodes(episodes(0, 2))
    assert actor.stats()["episodes"] == 2 and actor.reader.num_episodes == 2
    actor.close()


@pytest.mark.ray
def test_ray_actor_round_trip(tmp_path, ray_session):
    ray = ray_session
    actor = (
        remote_class().options(num_cpus=0).remote(str(tmp_path / "s"), obs_dim=O, action_dim=A, chunk_len=64, seed=0)
    )
    assert ray.get(actor.add_episodes.remote(episodes(0, 4))) == [0, 1, 2, 3]
    ray.get(actor.flush.remote())
    batch = ray.get(actor.sample.remote(8, 3))
    assert batch["obs"].shape == (4, 8, O) and ray.get(actor.stats.remote())["episodes"] == 4
    ray.get(actor.close.remote())
    ray.kill(actor)
    assert verify_shard(tmp_path / "s").episodes == 4


def test_state_tells_a_reopened_store_from_a_fresh_one(tmp_path):
    # what the driver compares after a shard restart (RayCollector.check_shards): the generation found at open
    actor = ReplayShardActor(tmp_path / "s", obs_dim=O, action_dim=A, chunk_len=64)
    assert actor.state()["opened_generation"] == 0
    actor.add_episodes(episodes(0, 3))
    first = actor.state()  # flushes: everything handed over is committed and counted
    assert first["generation"] >= 1 and first["whole_per_task"] == {0: 2, 1: 1}
    actor.close()
    again = ReplayShardActor(tmp_path / "s", obs_dim=O, action_dim=A, chunk_len=64).state()
    assert again["incarnation"] != first["incarnation"]
    assert again["opened_generation"] == first["generation"] and again["whole_per_task"] == first["whole_per_task"]
    # the same shard name where the store is not there (another node's disk): it opens empty, at generation 0
    elsewhere = ReplayShardActor(tmp_path / "other" / "s", obs_dim=O, action_dim=A, chunk_len=64).state()
    assert elsewhere["opened_generation"] == 0 < first["generation"] and elsewhere["whole_per_task"] == {}
