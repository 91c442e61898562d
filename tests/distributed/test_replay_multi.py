"""MultiShardSampler: size-proportional and task-balanced draws across shards, a damaged chunk that
costs only its episodes, an unreadable shard set aside while the others keep serving, background prefetch that picks up new data."""

import numpy as np
import pytest

from agents.batch import BATCH_KEYS
from distributed.replay.layout import chunk_file
from distributed.replay.multi import MultiShardSampler
from distributed.replay.synthetic import synthetic_episode
from distributed.replay.writer import ShardWriter

O, A, H = 6, 2, 3


def write(path, layout, first_id=0, chunk_len=128):
    """layout: list of (length, task). Ids start at first_id so shards never share an id."""
    with ShardWriter(path, obs_dim=O, action_dim=A, chunk_len=chunk_len, durable=False, first_episode_id=first_id) as w:
        for length, task in layout:
            w.add_episode(**synthetic_episode(w.next_episode_id, obs_dim=O, action_dim=A, length=length, task=task))


def shard_of(batch):
    return (batch["obs"][0, :, 0] // 10_000).astype(int)


def test_uniform_draws_in_proportion_to_shard_size(tmp_path):
    write(tmp_path / "a", [(50, 0)] * 10)
    write(tmp_path / "b", [(50, 1)] * 30, first_id=10_000)
    sampler, rng = MultiShardSampler([tmp_path / "a", tmp_path / "b"]), np.random.default_rng(0)
    shards = np.concatenate([shard_of(sampler.sample(256, H, rng)) for _ in range(20)])
    assert abs((shards == 1).mean() - 0.75) < 5 * np.sqrt(0.75 * 0.25 / len(shards))
    assert sampler.num_transitions == 40 * 49 and sampler.task_counts() == {0: 490, 1: 1470}


def test_task_balanced_across_shards(tmp_path):
    write(tmp_path / "a", [(60, 0)] * 50 + [(60, 1)])  # task 0 is 50x task 1 and lives only in a
    write(tmp_path / "b", [(60, 1)] + [(60, 2)] * 2, first_id=10_000)
    sampler, rng = MultiShardSampler([tmp_path / "a", tmp_path / "b"]), np.random.default_rng(0)
    batches = [sampler.sample(256, H, rng, balance="task") for _ in range(30)]
    tasks = np.concatenate([b["task"] for b in batches])
    for t in range(3):
        assert abs((tasks == t).mean() - 1 / 3) < 5 * np.sqrt(2 / 9 / len(tasks))
    task1_shards = np.concatenate([shard_of(b)[b["task"] == 1] for b in batches])
    assert 0.4 < (task1_shards == 0).mean() < 0.6  # task 1 is split evenly between the two shards
    for b in batches[:3]:  # windows stay inside one episode: ids constant, rows consecutive
        assert (b["obs"][:, :, 0] == b["obs"][0, :, 0]).all()
        assert (np.diff(b["obs"][:, :, 1], axis=0) == 1).all()


def test_a_damaged_chunk_costs_its_episodes_and_the_shard_keeps_serving(tmp_path):
    for i, name in enumerate("abc"):
        write(tmp_path / name, [(60, i)] * 10, first_id=10_000 * i, chunk_len=64)
    bad = tmp_path / "b"
    f = chunk_file(bad, "obs", 2, ndim=2)  # rows [128, 192): the shard's episodes 2 (120-179) and 3 (180-239)
    f.write_bytes(f.read_bytes()[:-20] + b"\0" * 20)
    sampler, rng = MultiShardSampler([tmp_path / n for n in "abc"]), np.random.default_rng(0)
    for _ in range(20):
        batch = sampler.sample(128, H, rng)
        assert tuple(batch) == BATCH_KEYS and batch["obs"].shape == (H + 1, 128, O)
    assert sampler.failed == {}
    (q,) = sampler.quarantine
    assert (q.shard, q.array, q.chunk, q.episodes) == (str(bad), "obs", 2, (10_002, 10_003))
    ids = np.concatenate([sampler.sample(256, H, rng)["obs"][0, :, 0] for _ in range(10)]).astype(int)
    assert {i // 10_000 for i in ids} == {0, 1, 2}  # shard b still serves
    assert not set(ids) & {10_002, 10_003}
    assert sampler.num_transitions == 28 * 59


def test_a_shard_whose_metadata_is_unreadable_is_set_aside_whole(tmp_path):
    for i, name in enumerate("ab"):
        write(tmp_path / name, [(60, i)] * 4, first_id=10_000 * i)
    (tmp_path / "b" / "zarr.json").write_text("{ not json")
    sampler = MultiShardSampler([tmp_path / "a", tmp_path / "b"])
    (why,) = sampler.failed.values()
    assert list(sampler.failed) == [str(tmp_path / "b")] and "cannot be opened" in why and "\n" not in why
    batch = sampler.sample(64, H, np.random.default_rng(0))
    assert set(shard_of(batch)) == {0}


def test_prefetch_serves_batches_and_picks_up_new_data(tmp_path):
    write(tmp_path / "a", [(40, 0)] * 5)
    write(tmp_path / "b", [(40, 0)] * 5, first_id=10_000)
    with MultiShardSampler([tmp_path / "a", tmp_path / "b"]) as sampler:
        sampler.start_prefetch(32, H, balance="task", seed=0, depth=2, refresh_every_s=0.0)
        for _ in range(5):
            assert sampler.next_batch(timeout=30)["obs"].shape == (H + 1, 32, O)
        write(tmp_path / "b", [(40, 5)] * 5)  # a new task appears in a shard while prefetching
        seen = set()
        for _ in range(200):
            seen |= set(sampler.next_batch(timeout=30)["task"].tolist())
            if 5 in seen:
                break
        assert seen == {0, 5}
    with pytest.raises(RuntimeError, match="start_prefetch"):
        sampler.next_batch()


def test_prefetch_hands_errors_to_the_consumer(tmp_path):
    write(tmp_path / "a", [(3, 0)] * 5)  # no window of horizon 3 fits in 3 rows
    with MultiShardSampler([tmp_path / "a"]) as sampler:
        sampler.start_prefetch(8, H)
        with pytest.raises(ValueError, match="no source has a window long enough"):
            sampler.next_batch(timeout=30)
