"""A real writer process is SIGKILLed at random moments; every time, the reopened shard passes
verify_shard, its committed episodes are exactly what was written, nothing committed is lost,
and the next writer resumes with fresh ids. Two writer processes at once, read by a third."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from distributed.replay.errors import WriterLockedError
from distributed.replay.layout import read_state
from distributed.replay.reader import ShardReader
from distributed.replay.synthetic import synthetic_episode
from distributed.replay.verify import verify_shard
from distributed.replay.writer import ShardWriter

O, A, C = 5, 2, 64

# Writes synthetic episodes forever (random lengths spanning chunks, random flushes) until killed,
# or `count` episodes then closes. Prints "ready" once it holds the writer lock.
WRITER = f"""
import sys, numpy as np
from distributed.replay.writer import ShardWriter
from distributed.replay.synthetic import synthetic_episode
path, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
w = ShardWriter(path, obs_dim={O}, action_dim={A}, chunk_len={C})
print("ready", flush=True)
n = 0
while count < 0 or n < count:
    w.add_episode(**synthetic_episode(w.next_episode_id, obs_dim={O}, action_dim={A}, max_len=150))
    n += 1
    if rng.random() < 0.2:
        w.flush()
w.close()
"""


def start_writer(path, seed, count=-1):
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(seed), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read()
    return proc


def run_for_cpu_seconds(proc, seconds: float, timeout: float = 120.0) -> None:
    """Wait until `proc` has spent `seconds` more CPU time (Linux /proc; wall time elsewhere): a kill
    after it lands at the same point of the writer's work however busy the machine is."""
    stat = f"/proc/{proc.pid}/stat"
    if not os.path.exists(stat):
        time.sleep(seconds)
        return

    def cpu() -> float:
        fields = open(stat).read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    target, deadline = cpu() + seconds, time.time() + timeout
    while cpu() < target and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)


def committed_episodes(path):
    """{episode id: (start, length, task)} of the live committed episodes."""
    _, c = read_state(path)
    g = zarr.open_group(str(path), mode="r")
    cols = [g[f"episodes/{k}"][c.first_episode : c.episodes] for k in ("id", "start", "length", "task")]
    return {int(i): (int(s), int(n), int(t)) for i, s, n, t in zip(*cols, strict=False)}


def check_content(path, episodes):
    """The rows of each episode are exactly the synthetic episode of that id."""
    g = zarr.open_group(str(path), mode="r")
    for eid, (start, length, task) in episodes.items():
        want = synthetic_episode(eid, obs_dim=O, action_dim=A, max_len=150)
        assert (length, task) == (len(want["obs"]), want["task"]), f"episode {eid} index entry"
        for k in ("obs", "action", "reward", "terminated", "truncated"):
            np.testing.assert_array_equal(g[k][start : start + length], want[k], err_msg=f"episode {eid} {k}")


def test_sigkill_at_random_moments_never_loses_or_corrupts(tmp_path):
    path = tmp_path / "s"
    rng = np.random.default_rng(0)
    seen: dict[int, tuple] = {}
    # 12 kills here; bench/faults.py's random-moment scenario (8 more in test_faults.py) adds a concurrent reader
    kills, grew = 12, 0
    for round_ in range(kills):
        proc = start_writer(path, seed=round_)
        if round_ == 0:
            with pytest.raises(WriterLockedError):
                ShardWriter(path, obs_dim=O, action_dim=A)
        run_for_cpu_seconds(proc, rng.uniform(0.1, 0.8))  # not wall time: CI runs other tests beside this one
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        report = verify_shard(path)
        now = committed_episodes(path)
        assert report.episodes == len(now)
        assert all(now.get(eid) == entry for eid, entry in seen.items()), "a committed episode changed or vanished"
        check_content(path, {e: v for e, v in now.items() if e not in seen})
        grew += len(now) > len(seen)
        seen = now
    assert grew > kills // 2  # most writers committed something before being killed
    with ShardWriter(path, obs_dim=O, action_dim=A) as w:  # the writer resumes cleanly
        assert w.next_episode_id > max(seen)
        eid = w.add_episode(**synthetic_episode(w.next_episode_id, obs_dim=O, action_dim=A, max_len=150))
    final = committed_episodes(path)
    assert final == {**seen, eid: final[eid]} and verify_shard(path).episodes == len(seen) + 1
    assert not list(path.rglob("*.partial"))  # a killed write's temp files are cleaned on reopen


def test_two_writer_processes_then_a_third_reads_everything(tmp_path):
    paths = [tmp_path / "a", tmp_path / "b"]
    procs = [start_writer(p, seed=i, count=60) for i, p in enumerate(paths)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    for path in paths:
        episodes = committed_episodes(path)
        assert sorted(episodes) == list(range(60))
        check_content(path, episodes)
        assert verify_shard(path).episodes == 60
        assert ShardReader(path).num_episodes == 60
