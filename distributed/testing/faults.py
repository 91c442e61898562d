"""Fault-injection scenarios: SIGKILL (a real OS signal) of shard writers, of actors inside a running Ray
job, and of a whole job; after each kill, every episode committed before it must still be there byte for
byte, none twice, nothing uncommitted visible, and the writer / job must carry on. Each scenario returns a
`Tally`: kills, committed (distinct episodes known committed before a kill), lost, corrupt, duplicated,
uncommitted (visible although never committed). bench/faults.py runs them all and prints the table;
tests/distributed/test_faults.py runs them smaller. A store's ledger (`snapshot`, `shards_of`,
`store_per_task`, `counted_per_task`) serves the node-loss runs too.

What counts as committed: what a commit record covered. A reader process samples the shards
while the writers run and logs every episode it sees committed with a SHA-256 of its bytes (obs,
action, reward, terminated, truncated, task); the store is also read after every kill. Writer
episodes are synthetic (distributed/replay/synthetic.py), so their bytes are also recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distributed.parts import ray_value
from distributed.ray_session import processes_with
from distributed.replay.faults import ENV_AT, ENV_CLAIM, ENV_SIGNAL
from distributed.replay.layout import (
    EPISODE_ARRAYS,
    EPISODE_GROUP,
    Commit,
    array_at,
    chunk_file,
    open_group,
    read_rows,
    read_state,
    whole_episodes_per_task,
)
from distributed.storage import StoragePath, is_remote, storage_path

REPO = Path(__file__).resolve().parents[2]

O, A, C = 5, 2, 64  # writer scenarios: small episodes, 64-row chunks (an episode spans up to 3)
CONTENT = ("obs", "action", "reward", "terminated", "truncated")


@dataclass
class Tally:
    """One scenario's figures; `problems` says what each non-zero count was about."""

    scenario: str
    kills: int = 0
    committed: int = 0
    lost: int = 0
    corrupt: int = 0
    duplicated: int = 0
    uncommitted: int = 0
    resumed: str = "yes"
    counters: str = "-"  # a job's checkpoint counters against the store: "match" or what differs
    resumed_at: tuple | None = None  # a resumed job: the (env steps, updates) of the checkpoint it resumed from
    problems: list = field(default_factory=list)

    def bad(self, kind: str, what: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.problems) < 20:
            self.problems.append(f"{kind}: {what}")

    @property
    def clean(self) -> bool:
        return (
            self.lost == self.corrupt == self.duplicated == self.uncommitted == 0
            and self.resumed == "yes"
            and self.counters in ("-", "match")
            and not self.problems
        )


def digest(rows: dict, task: int) -> str:
    """SHA-256 of an episode's bytes in store dtypes (obs, action, reward, terminated, truncated, task)."""
    from distributed.replay.layout import ROW_DTYPES

    h = hashlib.sha256()
    for k in CONTENT:
        h.update(np.ascontiguousarray(np.asarray(rows[k]).astype(ROW_DTYPES[k], copy=False)).tobytes())
    h.update(int(task).to_bytes(4, "little"))
    return h.hexdigest()


def synthetic_digest(k: int, task: int | None = None) -> tuple[str, int]:
    from distributed.replay.synthetic import synthetic_episode

    e = synthetic_episode(k, obs_dim=O, action_dim=A, max_len=150)
    return digest(e, e["task"]), e["task"]


def read_episode(group, shard: StoragePath, start: int, length: int) -> dict | None:
    """Rows [start, start+length) of the content arrays; None if a chunk file is missing or does not decode."""
    for name in CONTENT:
        ndim = group[name].ndim
        for k in range(start // group[name].chunks[0], (start + length - 1) // group[name].chunks[0] + 1):
            if not chunk_file(shard, name, k, ndim).exists():
                return None
    try:
        return {name: group[name][start : start + length] for name in CONTENT}
    except ValueError:  # a chunk failing its checksum (the corrupt-chunk scenario damages one on purpose)
        return None


def snapshot(shard: StoragePath) -> tuple[dict, Commit]:
    """The shard's committed live episodes as {episode id: (key, start, length, task, digest)}, and
    its commit record. key is obs[0, 0] (a synthetic episode's number) and digest None when a chunk
    the commit record covers is missing."""
    _, c = read_state(shard)
    g = open_group(shard, mode="r")
    cols = {
        k: read_rows(array_at(g, f"{EPISODE_GROUP}/{k}"), slice(c.first_episode, c.episodes)) for k in EPISODE_ARRAYS
    }
    out = {}
    for eid, s, n, t in zip(cols["id"], cols["start"], cols["length"], cols["task"], strict=False):
        rows = read_episode(g, shard, int(s), int(n))
        key = None if rows is None else int(rows["obs"][0, 0])
        out[int(eid)] = (key, int(s), int(n), int(t), None if rows is None else digest(rows, int(t)))
    return out, c


# ---- processes ---------------------------------------------------------------------------------
# A producer "p" numbers its episodes 0, 1, 2, ...; episode k is synthetic_episode(k). A restarted
# producer resends from two before the last committed number (a retry), as a runner would.
WRITER = f"""
import sys, numpy as np
from distributed.replay.writer import ShardWriter
from distributed.replay.synthetic import synthetic_episode
path, seed, capacity, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(seed)
w = ShardWriter(path, obs_dim={O}, action_dim={A}, chunk_len={C}, capacity=capacity or None)
k = max(0, w.commit.sources.get("p", -1) - 1)
print("ready", flush=True)
n = 0
while count < 0 or n < count:
    if not w.seen(("p", k)):  # a retried episode the shard holds already (what the shard actor does)
        w.add_episode(**synthetic_episode(k, obs_dim={O}, action_dim={A}, max_len=150), source=("p", k))
    k += 1
    n += 1
    if rng.random() < 0.2:
        w.flush()
w.close()
"""

# Samples every shard matching a glob until killed; logs each episode it sees committed (one JSON
# line: shard, id, key, start, digest) and every sampled window that is not the stored episode's rows.
READER = """
import glob, json, sys, time, numpy as np, zarr
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from distributed.testing.faults import read_episode, digest, O, A
from distributed.replay.layout import EPISODE_ARRAYS, EPISODE_GROUP, open_group, read_state
from distributed.replay.reader import ShardReader
from distributed.replay.errors import ChunkEvicted, ShardLayoutError
from distributed.replay.synthetic import synthetic_episode
pattern, log, synthetic = sys.argv[1], open(sys.argv[2], "a"), sys.argv[4] == "1"
def emit(**kw):
    log.write(json.dumps(kw) + "\\n"); log.flush()
readers, seen, gen = {}, {}, {}
rng = np.random.default_rng(0)
def shards():
    if "://" not in pattern:
        return sorted(glob.glob(pattern))
    if "*" not in pattern:  # a URI: one shard
        return [pattern]
    import fsspec
    fs, path = fsspec.core.url_to_fs(pattern)
    fs.invalidate_cache()  # a listing cached by s3fs would never show a shard created since
    return sorted(f"{pattern.split('://')[0]}://{p}" for p in fs.glob(path))
while True:
    for shard in shards():
        try:
            if shard not in readers:
                if "://" not in pattern and not Path(shard).is_dir():
                    continue
                try:
                    readers[shard] = ShardReader(shard, cache_bytes=1 << 20)
                except ShardLayoutError:
                    continue  # not created yet (no first commit record)
                seen[shard] = 0
            _, c = read_state(shard)
            if c.generation == gen.get(shard):
                continue
            g = open_group(shard, mode="r")
            lo = max(seen[shard], c.first_episode)
            cols = {k: g[EPISODE_GROUP][k][lo:c.episodes] for k in EPISODE_ARRAYS}
            for eid, s, n, t in zip(cols["id"], cols["start"], cols["length"], cols["task"]):
                rows = read_episode(g, shard, int(s), int(n))
                if read_state(shard)[1].first_row > s:
                    continue  # evicted while we read it
                if rows is None:
                    emit(shard=shard, error=f"episode {int(eid)}: a chunk the commit record covers is missing")
                    continue
                emit(shard=shard, id=int(eid), key=int(rows["obs"][0, 0]), start=int(s), digest=digest(rows, int(t)))
            seen[shard], gen[shard] = c.episodes, c.generation
            r = readers[shard]
            r.refresh()
            if synthetic and r.window_total(3):
                rows, task = r.draw(3, rng, n=8)
                try:
                    win = r.gather(rows)
                except ChunkEvicted:
                    continue
                for i in range(len(rows)):
                    k, row0 = int(win["obs"][i, 0, 0]), int(win["obs"][i, 0, 1])
                    e = synthetic_episode(k, obs_dim=O, action_dim=A, max_len=150)
                    sl = slice(row0, row0 + 4)
                    if not all(np.array_equal(win[name][i], e[name][sl]) for name in ("obs", "action", "reward", "terminated")) \\
                            or int(task[i]) != e["task"]:
                        emit(shard=shard, error=f"sampled window rows {rows[i].tolist()} is not episode {k}'s rows {row0}..{row0 + 3}")
        except ChunkEvicted:
            continue
        except Exception as exc:
            emit(shard=shard, error=f"{type(exc).__name__}: {exc}")
    time.sleep(0.02)
"""


def child_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_AT, ENV_CLAIM, ENV_SIGNAL)}
    env.update(
        PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MUJOCO_GL=env.get("MUJOCO_GL", "egl"), WANDB_MODE="disabled", **extra
    )
    return env


def _stderr_tail(proc: subprocess.Popen, chars: int = 2000) -> str:
    """The end of what a child process (started with stderr=PIPE) wrote to stderr."""
    if proc.stderr is None:
        raise RuntimeError("the child process's stderr is not a pipe")
    err = proc.stderr.read()
    return (err.decode() if isinstance(err, bytes) else err)[-chars:]


def start_writer(path: StoragePath, seed: int, capacity: int, env: dict, count: int = -1) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(seed), str(capacity), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    if proc.stdout is None:
        raise RuntimeError("the writer process's stdout is not a pipe")
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.wait()
        raise RuntimeError(f"writer did not start: {_stderr_tail(proc)}")
    return proc


class ReaderLog:
    """A reader process (READER) and the part of its log not yet consumed."""

    def __init__(self, pattern: str, log: Path, synthetic: bool):
        self.log, self.offset = log, 0
        log.touch()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", READER, pattern, str(log), str(REPO), "1" if synthetic else "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=child_env(),
            cwd=REPO,
        )

    def new_entries(self) -> list[dict]:
        data = self.log.read_bytes()[self.offset :]
        whole = data[: data.rfind(b"\n") + 1]
        self.offset += len(whole)
        return [json.loads(x) for x in whole.decode().splitlines()]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        return _stderr_tail(self.proc)


class Ledger:
    """Everything known committed, per shard: {episode id: (key, start, digest)}; checks a shard
    after a kill against it and against recomputed synthetic bytes."""

    def __init__(self, tally: Tally, synthetic: bool):
        self.tally, self.synthetic = tally, synthetic
        self.known: dict[str, dict[int, tuple]] = {}
        self.ever: set = set()

    def add_reader_entries(self, entries: list[dict]) -> None:
        for e in entries:
            if "error" in e:
                self.tally.bad("corrupt", f"reader: {e['shard']}: {e['error']}")
                continue
            known = self.known.setdefault(e["shard"], {})
            old = known.get(e["id"])
            if old is not None and old[2] != e["digest"]:
                self.tally.bad("corrupt", f"{e['shard']} episode {e['id']} read with two different contents")
            known[e["id"]] = (e["key"], e["start"], e["digest"])
            self.ever.add((e["shard"], e["id"]))

    def check(self, shard: StoragePath) -> dict:
        """Compare the shard's committed episodes with what was known committed before; learn them."""
        from distributed.replay.errors import ReplayError
        from distributed.replay.verify import verify_shard

        name = str(shard)
        try:
            verify_shard(shard)
        except ReplayError as exc:
            self.tally.bad("corrupt", f"verify_shard: {exc}")
        now, commit = snapshot(shard)
        known = self.known.setdefault(name, {})
        for eid, (key, start, _digest) in list(known.items()):
            if start < commit.first_row:  # evicted by a commit: gone on purpose
                del known[eid]
            elif eid not in now:
                self.tally.bad("lost", f"{name} episode {eid} (key {key}) was committed and is gone")
            elif now[eid][4] != _digest:
                self.tally.bad("corrupt", f"{name} episode {eid} changed")
        keys: dict = {}
        for eid, (key, start, _length, task, dg) in now.items():
            if dg is None:
                self.tally.bad("corrupt", f"{name} episode {eid}: a committed chunk is missing")
                continue
            if self.synthetic:
                want, want_task = synthetic_digest(key)
                if (dg, task) != (want, want_task):
                    self.tally.bad("corrupt", f"{name} episode {eid} is not synthetic episode {key}")
            # a synthetic episode stored twice has its number twice; a real one, its bytes
            keys.setdefault(key if self.synthetic else dg, []).append(eid)
            known[eid] = (key, start, dg)
            self.ever.add((name, eid))
        for key, eids in keys.items():
            if len(eids) > 1:
                self.tally.bad("duplicated", f"{name} holds episode {str(key)[:12]} as ids {eids}")
        self.tally.committed = len(self.ever)
        return now


def check_recovery(shard: StoragePath, tally: Tally) -> None:
    """Reopen the shard as its next writer would and close it: only committed content remains
    (row and index arrays cut to the commit record, no temp files), and the committed content is
    what it was before."""
    from distributed.replay.layout import INDEX_CHUNK_LEN, ROW_ARRAYS
    from distributed.replay.writer import GROW_CHUNKS, ShardWriter

    before, c = snapshot(shard)
    ShardWriter(shard, obs_dim=O, action_dim=A, chunk_len=C).close()
    after, c2 = snapshot(shard)
    g = open_group(shard, mode="r")
    # on an object store arrays grow ahead of the record (a step of GROW_CHUNKS chunks, an index chunk): shapes up
    # to that step are the layout, not leftovers (what lies there is overwritten before a record covers it)
    rows, episodes = (
        (-(-c.rows // (C * GROW_CHUNKS)) * C * GROW_CHUNKS, -(-c.episodes // INDEX_CHUNK_LEN) * INDEX_CHUNK_LEN)
        if is_remote(shard)
        else (c.rows, c.episodes)
    )
    extra = [n for n in ROW_ARRAYS if not c.rows <= array_at(g, n).shape[0] <= rows] + [
        f"episodes/{n}"
        for n in EPISODE_ARRAYS
        if not c.episodes <= array_at(g, f"{EPISODE_GROUP}/{n}").shape[0] <= episodes
    ]
    if extra or not is_remote(shard) and list(shard.rglob("*.partial")):
        tally.bad("uncommitted", f"{shard}: after reopening, {extra or 'temp files'} go beyond the commit record")
    if after != before or (c2.rows, c2.episodes) != (c.rows, c.episodes):
        tally.bad("lost", f"{shard}: reopening changed the committed content")


# ---- (a) a shard writer process -----------------------------------------------------------------
def writer_scenario(work: Path, name: str, points: list, seed: int = 0, capacity: int = 0, store=None) -> Tally:
    """Kill a writer process once per entry of `points`: a point name (the writer kills itself
    with SIGKILL at its n-th arrival there, n in 2..5, so it has committed before) or None (killed
    from outside after a random 0.2-1.5 s). A reader process samples throughout. Then one more
    writer adds 20 episodes and closes cleanly (the writer continues). `store`: where the shard goes
    (a directory or an s3:// URI; default `work`, which holds the reader's log either way)."""
    tally = Tally(f"writer: {name}" + (f" (capacity {capacity} rows)" if capacity else ""))
    ledger = Ledger(tally, synthetic=True)
    shard = storage_path(store or work) / name.replace(" ", "-")
    rng = np.random.default_rng(seed)
    reader = None
    try:
        for i, point in enumerate(points):
            env = child_env(**({ENV_AT: f"{point}:{int(rng.integers(2, 6))}"} if point else {}))
            proc = start_writer(shard, seed * 1000 + i, capacity, env)
            if reader is None:
                reader = ReaderLog(str(shard), work / f"{shard.name}.reader.jsonl", synthetic=True)
            if point is None:
                time.sleep(rng.uniform(0.2, 1.5))
                os.kill(proc.pid, signal.SIGKILL)
            try:
                code = proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
                tally.problems.append(f"writer {i} never reached {point}")
            if code != -signal.SIGKILL:
                raise RuntimeError(f"writer {i} ended with {code}, not SIGKILL: {_stderr_tail(proc)}")
            tally.kills += 1
            time.sleep(0.1)  # the reader catches up with the last commit (not needed for correctness)
            ledger.add_reader_entries(reader.new_entries())
            ledger.check(shard)
            check_recovery(shard, tally)
        committed = tally.committed  # what was committed before a kill
        proc = start_writer(shard, seed * 1000 + len(points), capacity, child_env(), count=20)
        if proc.wait(timeout=120) != 0:
            tally.resumed = "no"
            tally.problems.append(f"the writer after the kills failed: {_stderr_tail(proc)}")
        time.sleep(0.3)
        if reader is None:
            raise RuntimeError("writer_scenario needs at least one kill point")
        ledger.add_reader_entries(reader.new_entries())
        ledger.check(shard)
        tally.committed = committed
    finally:
        if reader is not None:
            err = reader.stop()
            if reader.proc.returncode != -signal.SIGKILL:
                tally.bad("corrupt", f"the reader process died: {err}")
    return tally


# ---- (b), (c) a running job ----------------------------------------------------------------------
# learning starts at 300 env steps, so the first checkpoint (600) holds a learner that has sampled and updated
JOB = ["preset=smoke", "task='cartpole-balance,pendulum-swingup,mw-reach'", "seed_steps=300"]

# The job's driver: launch/mt80.py, with the checkpoint writer reaching the kill point
# "checkpoint-write" once a checkpoint file is written and before it is renamed into place.
DRIVER = """
import runpy, sys
sys.path.insert(0, sys.argv[1])
import agents.checkpoint as ck
from distributed.replay.faults import KillSwitch
switch, real = KillSwitch(), ck._atomic
def _atomic(path, write):
    def write_then_stop(tmp):
        write(tmp)
        if path.name == ck.CHECKPOINT_FILE:  # not the model.safetensors written after it
            switch.reached("checkpoint-write")
    real(path, write_then_stop)
ck._atomic = _atomic
sys.argv = [sys.argv[1] + "/launch/mt80.py", *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def corrupt_chunk_scenario(work: Path, episodes: int = 60, more: int = 20, batches: int = 200) -> Tally:
    """A committed chunk of a shard gets garbage bytes (real bytes on disk, as a bad disk or a torn copy
    would leave them) while its writer is open and a reader samples with the writer recording damage
    (what a shard actor does). Expected: exactly the episodes with rows in that chunk are lost
    (quarantined), every other one is intact and sampled, the shard keeps taking episodes, no window
    ever holds rows that are not its episode's."""
    from distributed.replay.layout import episodes_in_chunk
    from distributed.replay.reader import ShardReader
    from distributed.replay.synthetic import synthetic_episode
    from distributed.replay.verify import verify_shard
    from distributed.replay.writer import ShardWriter

    shard = work / "corrupt-chunk"
    writer = ShardWriter(shard, obs_dim=O, action_dim=A, chunk_len=C, durable=False)
    for k in range(episodes):
        writer.add_episode(**synthetic_episode(k, obs_dim=O, action_dim=A, max_len=150), source=("p", k))
    writer.flush()
    before, c = snapshot(shard)
    ids = np.array(sorted(before))
    starts, lengths = np.array([before[i][1] for i in ids]), np.array([before[i][2] for i in ids])
    # the chunk holding rows of the most episodes (ties: the earliest): damage that costs more than one
    chunk = max(range(c.rows // C), key=lambda k: (len(episodes_in_chunk(starts, lengths, k, C)), -k))
    expected = set(ids[episodes_in_chunk(starts, lengths, chunk, C)].tolist())
    f = chunk_file(shard, "obs", chunk, 2)
    data = bytearray(f.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = os.urandom(16)
    f.write_bytes(bytes(data))
    tally = Tally(f"corrupt chunk: obs chunk {chunk} of {-(-c.rows // C)} holds rows of {len(expected)} episode(s)")
    tally.kills = 1  # one damaged chunk
    reader = ShardReader(shard, cache_bytes=0, record_damage=writer.quarantine)
    rng, seen = np.random.default_rng(0), set()

    def sample() -> None:
        for _ in range(batches):
            obs = reader.sample(64, 3, rng)["obs"]
            for b in range(obs.shape[1]):
                k, start = int(obs[0, b, 0]), int(obs[0, b, 1])
                want = synthetic_episode(k, obs_dim=O, action_dim=A, max_len=150)["obs"][start : start + 4]
                if not np.array_equal(obs[:, b], want):
                    tally.bad("corrupt", f"a window of episode {k} at row {start} is not its rows")
                seen.add(k)

    sample()
    for k in range(episodes, episodes + more):  # the shard keeps taking episodes
        writer.add_episode(**synthetic_episode(k, obs_dim=O, action_dim=A, max_len=150), source=("p", k))
    writer.close()
    reader.refresh()
    sample()
    after, c2 = snapshot(shard)
    tally.committed = len(after)
    aside = c2.quarantined_ids()
    live = {after[i][0] for i in after if i not in aside and after[i][2] > 23}  # 20+ windows: drawn surely
    key_of = {i: before[i][0] for i in before}  # a quarantined episode's key, read before the damage
    tally.scenario += f"; quarantined: {len(aside)}"
    if aside != expected:
        tally.bad("lost", f"quarantined {sorted(aside)}, the chunk holds {sorted(expected)}")
    for i, (key, *_rest, dig) in after.items():
        if i not in aside and dig != synthetic_digest(key)[0]:
            tally.bad("corrupt", f"episode {i} (synthetic {key}) differs from what was written")
    keys = [key_of.get(i, after[i][0]) for i in after]
    if len(keys) != len(set(keys)):
        tally.bad("duplicated", "an episode is stored twice")
    if live - seen:
        tally.bad("lost", f"{len(live - seen)} live episodes never sampled")
    tally.lost += len(set(range(episodes + more)) - set(keys))  # never stored, or gone from the index
    tally.lost += len(aside - expected)  # the "lost" column: episodes lost beyond the damaged chunk's
    tally.uncommitted = int(verify_shard(shard).quarantined_chunks != [chunk])
    tally.resumed = "yes" if c2.episodes == c.episodes + more else "no"
    return tally


def shards_of(run_dir: StoragePath) -> list[StoragePath]:
    return sorted(p for p in (run_dir / "replay").glob("shard-*") if (p / "zarr.json").exists())


def store_per_task(run_dir: StoragePath) -> dict[int, int]:
    """task id -> live committed whole episodes over every shard of the run (layout.whole_episodes_per_task)."""
    out: dict[int, int] = {}
    for shard in shards_of(run_dir):
        for t, n in whole_episodes_per_task(shard).items():
            out[t] = out.get(t, 0) + n
    return out


def counted_per_task(state: dict | None, names: list[str]) -> dict[int, int]:
    """task id -> episodes a checkpoint's counters hold (empty without a checkpoint)."""
    eps = state["counters"]["episodes"] if state else {}
    return {names.index(k): int(v) for k, v in eps.items() if int(v)}


def compare_counters(tally: Tally, counted: dict, stored: dict) -> None:
    if counted == stored:
        tally.counters = "match"
    else:
        diff = {
            t: (counted.get(t, 0), stored.get(t, 0))
            for t in sorted(set(counted) | set(stored))
            if counted.get(t, 0) != stored.get(t, 0)
        }
        tally.counters = f"differ {diff}"
        tally.problems.append(f"counters: task -> (counted, stored): {diff}")


def _checkpoint(run_dir: StoragePath) -> dict | None:
    from agents.checkpoint import CHECKPOINT_FILE, load_checkpoint

    return load_checkpoint(run_dir) if (run_dir / CHECKPOINT_FILE).exists() else None


def _check_continues(tally: Tally, loop, saved: dict) -> None:
    import torch

    if loop.limiter.state_dict() != saved["limiter"]:
        tally.resumed = "no"
        tally.problems.append(f"rate limiter resumed as {loop.limiter.state_dict()}, saved {saved['limiter']}")
    rngs = loop.built_parts().learners.rng_states()
    if [r["numpy"] for r in rngs] != [r["numpy"] for r in saved["learner_rng"]] or not all(
        torch.equal(a["torch"], b["torch"]) for a, b in zip(rngs, saved["learner_rng"], strict=False)
    ):
        tally.resumed = "no"
        tally.problems.append("the learners' RNG streams did not resume from the checkpoint")


def actors_scenario(work: Path, steps: int = 3000, root=None) -> Tally:
    """Inside a running job on the connected Ray: SIGKILL env runner 0's process after 600 env
    steps and shard 1's process after 1500 (Ray restarts both); the job must reach `steps`, keep
    every episode committed before each kill, store none twice, and its final checkpoint's
    counters must equal the store's episodes. `root`: where the run directory goes (a directory or an
    s3:// URI; default `work`, which holds the reader's log either way)."""
    import threading

    from distributed.config import compose
    from distributed.loop import Loop

    run_dir = storage_path(root or work) / "actors-run"
    tally = Tally("job: kill a shard actor's and an env runner's process")
    ledger = Ledger(tally, synthetic=False)
    # shards commit on a 30 s timer (or a full chunk): a killed shard always had uncommitted episodes
    loop = Loop(compose("mt80", [*JOB, f"run_dir={run_dir}", f"steps={steps}", "num_runners=2", "shard_flush_s=30"]))
    events: dict = {}

    def killer():
        try:
            while loop.env_steps < steps // 5:
                time.sleep(0.05)
            events["runner"] = ray_value(loop.built_parts().actors["runners"][0].pid.remote())
            os.kill(events["runner"], signal.SIGKILL)
            tally.kills += 1
            while loop.env_steps < steps // 2:
                time.sleep(0.05)
            events["shard"] = ray_value(loop.built_parts().actors["shards"][1].pid.remote())
            ledger.check(run_dir / "replay" / "shard-001")  # what it committed before the kill
            os.kill(events["shard"], signal.SIGKILL)
            tally.kills += 1
        except Exception as exc:  # noqa: BLE001  reported in the table
            events["error"] = f"{type(exc).__name__}: {exc}"

    reader = ReaderLog(str(run_dir / "replay" / "shard-*"), work / "actors.reader.jsonl", synthetic=False)
    try:
        loop.start()
        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        summary = loop.run()
        thread.join(timeout=10)
        new_pids = (
            ray_value(loop.built_parts().actors["runners"][0].pid.remote()),
            ray_value(loop.built_parts().actors["shards"][1].pid.remote()),
        )
    finally:
        loop.shutdown()
        time.sleep(0.5)
        err = reader.stop()
    if "error" in events:
        tally.problems.append(f"killer: {events['error']}")
    if summary["shards_set_aside"]:  # a restarted shard is healthy: it must keep serving batches
        tally.resumed = "no"
        tally.problems.append(f"shards set aside: {summary['shards_set_aside']}")
    if summary["env_steps"] < steps or new_pids[0] == events.get("runner") or new_pids[1] == events.get("shard"):
        tally.resumed = "no"
        tally.problems.append(
            f"the job did not carry on: {summary['env_steps']} env steps, pids {events} -> {new_pids}"
        )
    ledger.add_reader_entries(reader.new_entries())
    if reader.proc.returncode != -signal.SIGKILL:
        tally.bad("corrupt", f"the reader process died: {err}")
    for shard in shards_of(run_dir):
        ledger.check(shard)
    compare_counters(tally, counted_per_task(_checkpoint(run_dir), loop.names), store_per_task(run_dir))
    return tally


def job_scenario(
    work: Path,
    point: str,
    resume_steps: int = 1200,
    timeout: float = 600,
    checkpoint_freq: int = 600,
    overrides: tuple[str, ...] = (),
    root=None,
) -> Tally:
    """Run launch/mt80.py (its own embedded Ray, its own session) with the kill point `point`
    ("checkpoint-write:N" or "commit-record:N") armed in all its processes: the first process to
    reach it freezes there and the whole job is SIGKILLed at that moment. Then the job resumes on
    the same run directory (on the connected Ray) for `resume_steps` more env steps. Checks: every
    episode committed before the kill (a reader process logs them while the job runs) is there
    byte for byte after the kill and after the resumed run; none is stored twice; the resumed run
    starts from the checkpoint's counters, rate limiter and learner RNG streams; what the resumed run counts is what it added to the store.
    `overrides` (config overrides) apply to the killed job and to the resumed one. `root`: where the run
    directory goes (a directory or an s3:// URI, default `work`; the claim file and logs stay in `work`)."""
    from distributed.config import compose
    from distributed.loop import Loop

    name = point.split(":")[0]
    tally = Tally(f"whole job: during {'a checkpoint write' if name == 'checkpoint-write' else 'a shard commit'}")
    ledger = Ledger(tally, synthetic=False)
    run_dir, claim = storage_path(root or work) / f"job-{name}", work / f"{name}.claim"
    ray_tmp = f"/tmp/rf{os.getpid()}{name[:2]}"  # short: Ray's socket paths have a length limit
    env = child_env(**{ENV_AT: point, ENV_CLAIM: str(claim), ENV_SIGNAL: "STOP"})
    log = open(work / f"job-{name}.log", "w")
    job = subprocess.Popen(
        [
            sys.executable,
            "-c",
            DRIVER,
            str(REPO),
            *JOB,
            *overrides,
            "steps=100000",
            f"checkpoint_freq={checkpoint_freq}",
            f"run_dir={run_dir}",
            "ray.num_cpus=2",
            f"ray.temp_dir={ray_tmp}",
        ],
        cwd=REPO,
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    reader = ReaderLog(str(run_dir / "replay" / "shard-*"), work / f"job-{name}.reader.jsonl", synthetic=False)
    try:
        deadline = time.time() + timeout
        while not claim.exists() and time.time() < deadline and job.poll() is None:
            time.sleep(0.05)
        time.sleep(0.05)  # the claiming process writes its pid, then stops itself
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)
        job.wait()
        time.sleep(1)
        for pid in processes_with(ray_tmp):  # Ray's processes that left the job's process group
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if claim.exists() and claim.read_text().strip():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(claim.read_text()), signal.SIGKILL)
        import shutil

        shutil.rmtree(ray_tmp, ignore_errors=True)  # the killed job's Ray session files
    if not claim.exists():
        reader.stop()
        raise RuntimeError(f"the job never reached {point}: {(work / f'job-{name}.log').read_text()[-3000:]}")
    tally.kills = 1
    time.sleep(0.5)  # the reader has seen the last commits
    ledger.add_reader_entries(reader.new_entries())
    for shard in shards_of(run_dir):
        ledger.check(shard)  # the store right after the kill
    tally.committed = len(ledger.ever)
    if name == "checkpoint-write" and not (run_dir / "checkpoint.pt.tmp").exists():
        tally.problems.append("no checkpoint.pt.tmp: the kill did not land inside the checkpoint write")
    saved = _checkpoint(run_dir)
    names = compose("mt80", [*JOB, *overrides, f"run_dir={run_dir}"]).task.strip("'").split(",")
    stored_at_kill = store_per_task(run_dir)
    start_steps = saved["extra"]["env_steps"] if saved else 0
    loop = Loop(compose("mt80", [*JOB, *overrides, f"run_dir={run_dir}", f"steps={start_steps + resume_steps}"]))
    try:
        loop.start()
        if saved and (loop.env_steps, loop.updates) != (saved["extra"]["env_steps"], saved["extra"]["updates"]):
            tally.resumed = "no"
            tally.problems.append(
                f"resumed at {(loop.env_steps, loop.updates)}, the checkpoint says "
                f"{(saved['extra']['env_steps'], saved['extra']['updates'])}"
            )
        if saved:  # the rate limiter and every learner rank's RNG streams continue where the checkpoint left them
            tally.resumed_at = (saved["extra"]["env_steps"], saved["extra"]["updates"])
            _check_continues(tally, loop, saved)
        summary = loop.run()
        names = loop.names
    except Exception as exc:  # noqa: BLE001  a job that cannot resume is a finding
        tally.resumed = "no"
        tally.problems.append(f"resume failed: {type(exc).__name__}: {exc}")
        summary = None
    finally:
        loop.shutdown()
        time.sleep(0.5)
        err = reader.stop()
    if summary is not None and summary["env_steps"] < start_steps + resume_steps:
        tally.resumed = "no"
    ledger.add_reader_entries(reader.new_entries())
    if reader.proc.returncode != -signal.SIGKILL:
        tally.bad("corrupt", f"the reader process died: {err}")
    for shard in shards_of(run_dir):
        ledger.check(shard)
    final = _checkpoint(run_dir)
    added_count = {t: n - counted_per_task(saved, names).get(t, 0) for t, n in counted_per_task(final, names).items()}
    added_store = {t: n - stored_at_kill.get(t, 0) for t, n in store_per_task(run_dir).items()}
    compare_counters(tally, {t: n for t, n in added_count.items() if n}, {t: n for t, n in added_store.items() if n})
    return tally
