"""ShardReader sampling: the batch contract, windows inside one episode, uniform and task-balanced
draws, a bounded cache, and named errors for missing or corrupted chunks."""

import numpy as np
import pytest

from agents.batch import BATCH_KEYS, Batch
from distributed.replay.errors import ChunkError
from distributed.replay.layout import chunk_file
from distributed.replay.reader import ShardReader
from distributed.replay.synthetic import synthetic_episode
from distributed.replay.verify import verify_shard
from distributed.replay.writer import ShardWriter

O, A, H = 6, 3, 4


def write_shard(path, episodes, chunk_len=128):
    """episodes: list of (length, task); returns {episode id: episode dict}."""
    out = {}
    with ShardWriter(path, obs_dim=O, action_dim=A, chunk_len=chunk_len, durable=False) as w:
        for length, task in episodes:
            ep = synthetic_episode(w.next_episode_id, obs_dim=O, action_dim=A, length=length, task=task)
            out[w.add_episode(**ep)] = ep
    return out


def check_windows(batch, episodes):
    """Every window lies inside one episode and matches its rows exactly; returns (ids, starts)."""
    obs = batch["obs"]
    ids, starts = obs[0, :, 0].astype(int), obs[0, :, 1].astype(int)
    for b, (eid, s) in enumerate(zip(ids, starts, strict=False)):
        ep = episodes[eid]
        assert s + H < len(ep["obs"]), "window runs past the episode's last row"
        np.testing.assert_array_equal(obs[:, b], ep["obs"][s : s + H + 1])
        np.testing.assert_array_equal(batch["action"][:, b], ep["action"][s + 1 : s + H + 1])
        np.testing.assert_array_equal(batch["reward"][:, b], ep["reward"][s + 1 : s + H + 1])
        np.testing.assert_array_equal(batch["terminated"][:, b], ep["terminated"][s + 1 : s + H + 1])
        assert batch["task"][b] == ep["task"]
    return ids, starts


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    path = tmp_path_factory.mktemp("mixed") / "s"
    rng = np.random.default_rng(1)
    episodes = write_shard(path, [(int(rng.integers(2, 60)), int(rng.integers(0, 3))) for _ in range(80)])
    return path, episodes


def test_batch_has_the_learner_contract(mixed):
    path, _ = mixed
    masks = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1]], np.float32)
    batch = ShardReader(path).sample(32, H, np.random.default_rng(0), action_masks=masks)
    assert tuple(batch) == BATCH_KEYS
    shapes = {k: v.shape for k, v in batch.items()}
    assert shapes == {
        "obs": (H + 1, 32, O),
        "action": (H, 32, A),
        "reward": (H, 32),
        "terminated": (H, 32),
        "task": (32,),
        "action_mask": (32, A),
    }
    assert batch["task"].dtype == np.int64 and batch["action_mask"].dtype == np.float32
    np.testing.assert_array_equal(batch["action_mask"], masks[batch["task"]])
    assert Batch.from_numpy(batch).horizon == H
    no_masks = ShardReader(path).sample(4, H, np.random.default_rng(0))
    assert (no_masks["action_mask"] == 1).all()
    with pytest.raises(ValueError, match="only 2 rows"):
        ShardReader(path).sample(256, H, np.random.default_rng(0), action_masks=masks[:2])
    with pytest.raises(ValueError, match=r"expected \[num_tasks, 3\]"):
        ShardReader(path).sample(4, H, np.random.default_rng(0), action_masks=np.ones((3, 5)))


@pytest.mark.parametrize("balance", ["uniform", "task"])
def test_windows_stay_inside_one_episode_and_match_the_data(mixed, balance):
    path, episodes = mixed
    reader = ShardReader(path, cache_bytes=20_000)  # small cache: chunks are evicted and reloaded
    for seed in range(10):
        check_windows(reader.sample(64, H, np.random.default_rng(seed), balance=balance), episodes)
    assert reader.cached_bytes <= 20_000 + reader.chunk_bytes


def test_same_seed_same_batch(mixed):
    path, _ = mixed
    a = ShardReader(path).sample(16, H, np.random.default_rng(7), balance="task")
    b = ShardReader(path).sample(16, H, np.random.default_rng(7), balance="task")
    for k in BATCH_KEYS:
        np.testing.assert_array_equal(a[k], b[k])


def test_uniform_is_uniform_over_windows(tmp_path):
    episodes = write_shard(tmp_path / "s", [(10, 0), (100, 0), (4, 0)])  # windows: 6, 96, 0
    reader, rng = ShardReader(tmp_path / "s"), np.random.default_rng(0)
    ids = np.concatenate([check_windows(reader.sample(256, H, rng), episodes)[0] for _ in range(40)])
    n = len(ids)
    assert not (ids == 2).any()  # an episode shorter than the window is never drawn
    share = (ids == 0).mean()
    assert abs(share - 6 / 102) < 5 * np.sqrt(6 / 102 * (96 / 102) / n)


def test_task_balance_with_100x_imbalance(tmp_path):
    # task 0: 100 episodes of 100 rows; tasks 1 and 2: one episode of 100 rows each
    layout = [(100, 0)] * 100 + [(100, 1), (100, 2)]
    episodes = write_shard(tmp_path / "s", layout, chunk_len=512)
    reader, rng = ShardReader(tmp_path / "s"), np.random.default_rng(0)
    tasks = []
    for _ in range(60):
        batch = reader.sample(256, H, rng, balance="task")
        check_windows(batch, episodes)
        tasks.append(batch["task"])
    tasks = np.concatenate(tasks)
    sd = np.sqrt((1 / 3) * (2 / 3) / len(tasks))
    for t in range(3):
        assert abs((tasks == t).mean() - 1 / 3) < 5 * sd, f"task {t} share {(tasks == t).mean():.3f}"
    uniform = np.concatenate([reader.sample(256, H, rng)["task"] for _ in range(10)])
    assert (uniform == 0).mean() > 0.95  # without balancing the big task dominates


def test_no_long_enough_episode_is_a_clear_error(tmp_path):
    write_shard(tmp_path / "s", [(3, 0), (4, 1)])
    with pytest.raises(ValueError, match="no episode has more than 4 rows"):
        ShardReader(tmp_path / "s").sample(8, H, np.random.default_rng(0))
    with pytest.raises(ValueError, match="no task"):
        ShardReader(tmp_path / "s").sample(8, H, np.random.default_rng(0), balance="task")


def corrupt(path, array="obs", chunk=1):
    """Flip bytes in the middle of a committed chunk file, for real."""
    f = chunk_file(path, array, chunk, ndim=2 if array in ("obs", "action") else 1)
    data = bytearray(f.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 8] = b"\xff" * 8
    f.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_damaged_chunk_costs_the_episodes_with_rows_in_it_and_nothing_else(tmp_path, damage):
    path = tmp_path / "s"
    episodes = write_shard(path, [(60, e % 2) for e in range(12)], chunk_len=64)
    if damage == "corrupt":
        corrupt(path, "reward", chunk=3)
    else:
        (path / "obs" / "c" / "3" / "0").unlink()
    array = "reward" if damage == "corrupt" else "obs"
    with pytest.raises(ChunkError, match=rf"shard {path}: chunk 3 of array '{array}' is {damage}") as e:
        verify_shard(path)
    assert (e.value.shard, e.value.array, e.value.chunk) == (str(path), array, 3)
    reader = ShardReader(path)
    before = reader.num_transitions
    seen = set()
    for seed in range(30):  # 10 chunks, 256 windows per batch: chunk 3 is hit in the first batch
        ids, _ = check_windows(reader.sample(256, H, np.random.default_rng(seed)), episodes)
        seen.update(ids.tolist())
    # rows [192, 256) of 60-row episodes: episodes 3 (rows 180-239) and 4 (240-299), exactly
    (q,) = reader.quarantine
    assert (q.array, q.chunk, q.episodes, q.transitions) == (array, 3, (3, 4), 2 * 59)
    assert seen == set(range(12)) - {3, 4}
    assert reader.num_transitions == before - 2 * 59 and reader.num_episodes == 10
    assert reader.task_counts() == {0: 5 * 59, 1: 5 * 59}
    assert "chunk 3" in q.line() and "2 episodes" in q.line() and "\n" not in q.line()
    # a read-only reader keeps it to itself: the shard's record is unchanged, a new reader meets it again
    assert ShardReader(path).quarantine == []


def test_quarantine_recorded_by_the_writer_holds_for_every_reader_and_after_reopening(tmp_path):
    path = tmp_path / "s"
    episodes = write_shard(path, [(60, e % 3) for e in range(12)], chunk_len=64)
    corrupt(path, "obs", chunk=5)  # rows [320, 384): episodes 5 (300-359) and 6 (360-419)
    writer = ShardWriter(path, obs_dim=O, action_dim=A, chunk_len=64, durable=False)
    reader = ShardReader(path, record_damage=writer.quarantine)
    for seed in range(5):
        reader.sample(256, H, np.random.default_rng(seed))
    assert [(q.chunk, q.episodes) for q in reader.quarantine] == [(5, (5, 6))]
    assert writer.commit.live_episodes == 10 and writer.commit.live_transitions == 10 * 59
    assert writer.quarantine("obs", 5, "again") == reader.quarantine[0]  # recorded once
    more = synthetic_episode(writer.next_episode_id, obs_dim=O, action_dim=A, length=60, task=1)
    episodes[writer.add_episode(**more)] = more  # the shard keeps taking episodes
    writer.close()
    report = verify_shard(path)  # the damaged chunk is known: not read, its episodes not counted
    assert report.quarantined_chunks == [5] and report.episodes == 11
    fresh = ShardReader(path)
    assert [(q.chunk, q.episodes, q.reason) for q in fresh.quarantine] == [(5, (5, 6), reader.quarantine[0].reason)]
    ids = np.concatenate(
        [check_windows(fresh.sample(256, H, np.random.default_rng(s)), episodes)[0] for s in range(20)]
    )
    assert set(ids.tolist()) == set(range(13)) - {5, 6}
    with ShardWriter(path, obs_dim=O, action_dim=A, chunk_len=64, durable=False) as again:
        assert again.commit.live_episodes == 11 and again.commit.quarantined_ids() == {5, 6}


def test_eviction_takes_a_quarantine_entry_with_its_chunk(tmp_path):
    path = tmp_path / "s"
    with ShardWriter(path, obs_dim=O, action_dim=A, chunk_len=64, capacity=256, durable=False) as w:
        for _e in range(4):
            w.add_episode(**synthetic_episode(w.next_episode_id, obs_dim=O, action_dim=A, length=60, task=0))
        w.flush()
        assert w.quarantine("obs", 1, "corrupted (test)").episodes == (1, 2)
        for _e in range(12):
            w.add_episode(**synthetic_episode(w.next_episode_id, obs_dim=O, action_dim=A, length=60, task=0))
        w.flush()
        assert w.commit.first_row > 128 and w.commit.quarantine == []
    assert verify_shard(path).quarantined_chunks == []
