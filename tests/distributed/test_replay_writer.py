"""ShardWriter: commit protocol, resume, single writer, input checks, eviction, plain-Zarr layout, CLI."""

import os
import subprocess
import sys

import numpy as np
import pytest
import zarr

from distributed.replay.errors import ShardLayoutError, WriterLockedError
from distributed.replay.reader import ShardReader
from distributed.replay.synthetic import synthetic_episode
from distributed.replay.verify import verify_shard
from distributed.replay.writer import ShardWriter

O, A = 7, 3


def add(writer, n, **kw):
    ids = []
    for _ in range(n):
        ep = synthetic_episode(writer.next_episode_id, obs_dim=O, action_dim=A, max_len=kw.pop("max_len", 90), **kw)
        ids.append(writer.add_episode(**ep))
    return ids


def committed_ids(path):
    g = zarr.open_group(str(path), mode="r")
    c = g.attrs["latentfleet_replay"]["commit"]
    return g["episodes/id"][c["first_episode"] : c["episodes"]].tolist()


def test_plain_zarr_reads_every_episode_back(tmp_path):
    with ShardWriter(tmp_path / "s", obs_dim=O, action_dim=A, chunk_len=64) as w:
        ids = add(w, 25)
    g = zarr.open_group(str(tmp_path / "s"), mode="r")  # as documented in distributed/replay/README.md
    commit = g.attrs["latentfleet_replay"]["commit"]
    assert g["obs"].shape == (commit["rows"], O)
    assert g["episodes/id"][:].tolist() == ids
    for i, eid in enumerate(ids):
        start, length, task = (int(g[f"episodes/{k}"][i]) for k in ("start", "length", "task"))
        want = synthetic_episode(eid, obs_dim=O, action_dim=A, max_len=90)
        sl = slice(start, start + length)
        for k in ("obs", "action", "reward", "terminated", "truncated"):
            np.testing.assert_array_equal(g[k][sl], want[k], err_msg=k)
        assert task == want["task"] and (g["task"][sl] == task).all()
        assert (g["episode"][sl] == eid).all() and (g["step"][sl] == np.arange(length)).all()
        assert i in g[f"tasks/{task}"][:]
    assert sorted(name for name, _ in g.members()) == sorted(
        ["obs", "action", "reward", "terminated", "truncated", "task", "episode", "step", "episodes", "tasks"]
    )


def test_reader_sees_only_committed_data_and_chunks_are_written_once(tmp_path):
    path = tmp_path / "s"
    w = ShardWriter(path, obs_dim=O, action_dim=A, chunk_len=256)
    w.add_episode(**synthetic_episode(0, obs_dim=O, action_dim=A, length=50))
    r = ShardReader(path)
    assert r.num_episodes == 0 and w.pending_rows == 50  # less than a chunk: still in RAM
    w.flush()
    assert r.refresh() and r.num_episodes == 1 and r.num_transitions == 49
    chunk0 = path / "obs" / "c" / "0" / "0"
    before = (os.stat(chunk0).st_ino, chunk0.read_bytes())
    add(w, 30)  # fills and commits several whole chunks after the padded first one
    w.flush()
    assert (os.stat(chunk0).st_ino, chunk0.read_bytes()) == before  # committed chunk never rewritten
    assert w.commit.rows > 256 and zarr.open_group(str(path))["episode"][50:256].tolist() == [-1] * 206
    w.close()
    report = verify_shard(path)
    assert report.episodes == 31 and report.padding_rows >= 206


def test_reopen_resumes_ids_and_content(tmp_path):
    path = tmp_path / "s"
    with ShardWriter(path, obs_dim=O, action_dim=A, chunk_len=64) as w:
        first = add(w, 10)
    content = zarr.open_group(str(path))["obs"][:]
    with ShardWriter(path, obs_dim=O, action_dim=A) as w:  # chunk_len comes from the store
        assert w.info.chunk_len == 64 and w.next_episode_id == 10
        second = add(w, 10)
    assert second == list(range(10, 20))
    assert committed_ids(path) == first + second
    np.testing.assert_array_equal(zarr.open_group(str(path))["obs"][: len(content)], content)
    assert verify_shard(path).episodes == 20


def test_second_writer_refused_until_first_closes(tmp_path):
    path = tmp_path / "s"
    w = ShardWriter(path, obs_dim=O, action_dim=A)
    with pytest.raises(WriterLockedError, match="already has a live writer.*pid"):
        ShardWriter(path, obs_dim=O, action_dim=A)
    w.close()
    ShardWriter(path, obs_dim=O, action_dim=A).close()


def test_reopening_with_other_dims_is_an_error_that_loses_nothing(tmp_path):
    path = tmp_path / "s"
    with ShardWriter(path, obs_dim=O, action_dim=A, chunk_len=64) as w:
        ids = add(w, 8)
    with pytest.raises(ShardLayoutError, match="obs_dim=7, action_dim=3.*obs_dim=9, action_dim=3"):
        ShardWriter(path, obs_dim=9, action_dim=A)
    with pytest.raises(ShardLayoutError, match="chunk_len=64"):
        ShardWriter(path, obs_dim=O, action_dim=A, chunk_len=128)
    assert committed_ids(path) == ids and verify_shard(path).episodes == 8
    ShardWriter(path, obs_dim=O, action_dim=A).close()  # the failed opens released the lock


def test_refuses_a_directory_that_is_not_a_shard(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    with pytest.raises(ShardLayoutError, match="not a replay shard"):
        ShardWriter(tmp_path / "d", obs_dim=O, action_dim=A)
    zarr.create_group(str(tmp_path / "g"))
    with pytest.raises(ShardLayoutError, match="not a replay shard"):
        ShardWriter(tmp_path / "g", obs_dim=O, action_dim=A)
    assert (tmp_path / "d" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("obs", np.zeros((10, O + 1), np.float32), r"obs has shape \(10, 8\).*\[T\+1, 7\]"),
        ("action", np.zeros((9, A), np.float32), r"action has shape \(9, 3\), expected \(10, 3\)"),
        ("reward", np.zeros((10, 1), np.float32), r"reward has shape \(10, 1\), expected \(10,\)"),
        ("obs", np.zeros((10, O), np.int64), r"obs has dtype int64"),
        ("terminated", np.full(10, 0.5), r"terminated has dtype float64"),
        ("reward", np.full(10, np.nan, np.float32), r"reward .* NaN"),
        ("task", -1, r"task must be an int"),
        ("obs", np.zeros((1, O), np.float32), r"T >= 1"),
    ],
)
def test_bad_inputs_are_rejected_before_anything_is_written(tmp_path, key, value, message):
    with ShardWriter(tmp_path / "s", obs_dim=O, action_dim=A) as w:
        ep = synthetic_episode(0, obs_dim=O, action_dim=A, length=10)
        ep[key] = value
        with pytest.raises(ValueError, match=message):
            w.add_episode(**ep)
        assert w.pending_rows == 0 and w.next_episode_id == 0


def test_row_convention_is_enforced(tmp_path):
    with ShardWriter(tmp_path / "s", obs_dim=O, action_dim=A) as w:
        ep = synthetic_episode(0, obs_dim=O, action_dim=A, length=10)
        ep["reward"] = ep["reward"].copy()
        ep["reward"][0] = 1.0
        with pytest.raises(ValueError, match="row 0"):
            w.add_episode(**ep)
        ep = synthetic_episode(0, obs_dim=O, action_dim=A, length=10)
        ep["terminated"] = ep["terminated"].copy()
        ep["terminated"][4] = True
        with pytest.raises(ValueError, match="last row"):
            w.add_episode(**ep)


def test_fifo_eviction_by_whole_chunks_is_durable(tmp_path):
    path = tmp_path / "s"
    C, cap = 64, 256
    with ShardWriter(path, obs_dim=O, action_dim=A, chunk_len=C, capacity=cap) as w:
        ids = add(w, 40, max_len=40)
    c = w.commit
    assert c.first_row > 0 and c.first_row % C == 0 and c.rows - c.first_row <= cap
    for k in range(c.first_row // C):
        assert not (path / "obs" / "c" / str(k) / "0").exists()
    live = committed_ids(path)
    assert live == ids[len(ids) - len(live) :] and len(live) < len(ids)
    report = verify_shard(path)
    assert report.episodes == len(live)
    r = ShardReader(path)
    batch = r.sample(64, 3, np.random.default_rng(0))
    assert set(batch["obs"][0, :, 0].astype(int)) <= set(live)
    with ShardWriter(path, obs_dim=O, action_dim=A, capacity=cap) as w:  # reopen keeps the eviction
        assert w.commit.first_row == c.first_row
        add(w, 10, max_len=40)
    assert verify_shard(path).episodes > 0


def test_inspect_cli_prints_summary(tmp_path):
    path = tmp_path / "s"
    with ShardWriter(path, obs_dim=O, action_dim=A, chunk_len=64) as w:
        for i in range(6):
            w.add_episode(**synthetic_episode(i, obs_dim=O, action_dim=A, length=11, task=i % 2))
    out = subprocess.run(
        [sys.executable, "-m", "distributed.replay.inspect", str(path)], check=True, capture_output=True, text=True
    ).stdout
    assert "transitions  60" in out and "episodes     6" in out and "size on disk" in out
    assert any(line.split() == ["0", "3", "30"] for line in out.splitlines())
