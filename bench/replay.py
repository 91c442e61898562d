"""Replay-store figures: insert rate, sample rate (1 and 4 shards), reopen time and RAM at 1M rows.

    .venv/bin/python bench/replay.py               # 1M transitions, obs 39, action 6 (about 2 min)
    .venv/bin/python bench/replay.py --rows 200000 # quicker
    .venv/bin/python bench/replay.py --s3          # local disk against an S3 server (moto on loopback):
                                                   # episodes/s inserted, batches/s sampled (100k rows)
    .venv/bin/python bench/replay.py --s3-job "preset=smoke task=cartpole-balance steps=4000"
                                                   # the job's updates/s with run_dir local vs s3://

Episodes are synthetic (501 rows = 500 agent steps); batches are 256 windows of horizon 3
(4 observation rows), TD-MPC2's setting. Figures print as they come; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from distributed.replay.multi import MultiShardSampler
from distributed.replay.reader import ShardReader
from distributed.replay.synthetic import synthetic_episode
from distributed.replay.writer import ShardWriter

O, A, EP_ROWS, B, H = 39, 6, 501, 256, 3


def fill(path: Path, rows: int, durable: bool, first_id: int = 0) -> float:
    """Write about `rows` rows of 501-row episodes over 8 tasks; returns transitions per second."""
    pool = [synthetic_episode(i, obs_dim=O, action_dim=A, length=EP_ROWS, task=i % 8) for i in range(16)]
    n_eps = max(1, rows // EP_ROWS)
    t = time.perf_counter()
    with ShardWriter(path, obs_dim=O, action_dim=A, durable=durable, first_episode_id=first_id) as w:
        for i in range(n_eps):
            w.add_episode(**pool[i % len(pool)])
    return n_eps * (EP_ROWS - 1) / (time.perf_counter() - t)


def fill_episodes_per_s(path, rows: int) -> float:
    """Episodes per second inserted (501-row episodes, committed as chunks fill, closed at the end)."""
    return fill(path, rows, durable=False) / (EP_ROWS - 1)


def compare_s3(rows: int) -> None:
    """The same insert and sample figures with the shard on local disk and on an S3-compatible server
    (moto in its own process on 127.0.0.1, through s3fs and Zarr's FsspecStore, as a run uses it)."""

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.common import machine_line, matmul_gflops
    from distributed.testing.s3_server import S3Server

    print(machine_line(matmul_gflops()), f"; {os.cpu_count()} cores", flush=True)
    local_root = Path(tempfile.mkdtemp(prefix="replay-bench-"))
    with S3Server() as server:
        os.environ.update(server.environ)
        stores = {
            "local disk": local_root / "shard",
            "S3 (moto, loopback)": server.make_bucket("replay-bench") + "/shard",
        }
        try:
            rng = np.random.default_rng(0)
            for label, path in stores.items():
                server0 = cpu_s(server.proc.pid)
                t0 = time.perf_counter()
                eps = fill_episodes_per_s(path, rows)
                server_share = (cpu_s(server.proc.pid) - server0) / (time.perf_counter() - t0)
                r = ShardReader(path, cache_bytes=256 << 20)
                rate(lambda: r.sample(B, H, rng), seconds=4.0)  # warm: the whole store in the cache
                warm = rate(lambda: r.sample(B, H, rng))
                cold = ShardReader(path, cache_bytes=8 << 20)
                rate(lambda: cold.sample(B, H, rng), seconds=1.0)
                miss = rate(lambda: cold.sample(B, H, rng))
                t = time.perf_counter()
                ShardReader(path)
                reopen = time.perf_counter() - t
                print(
                    f"{label:>20}: insert {eps:,.1f} episodes/s ({eps * (EP_ROWS - 1):,.0f} transitions/s, "
                    f"{r.num_transitions:,} transitions); sample {warm:.1f} batches/s of {B}x{H + 1} rows with the "
                    f"store in the cache, {miss:.1f} with an 8 MiB cache (chunks read from the store); reader "
                    f"open {reopen:.2f} s"
                    + (f"; the S3 server used {server_share:.2f} CPU-s per s while inserting" if "S3" in label else ""),
                    flush=True,
                )
        finally:
            shutil.rmtree(local_root, ignore_errors=True)


def compare_job_s3(overrides: list[str]) -> None:
    """env steps/s and updates/s of `launch/mt80.py <overrides>` with run_dir on local disk, then in a
    bucket on the S3 server (each run from its summary line)."""
    import ast

    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo))
    from bench.common import machine_line, matmul_gflops
    from distributed.testing.s3_server import S3Server

    print(machine_line(matmul_gflops()), f"; {os.cpu_count()} cores", flush=True)
    tmp = tempfile.mkdtemp(prefix="replay-bench-job-")
    with S3Server() as server:
        env = {**os.environ, **server.environ}
        for label, run_dir in (
            ("local disk", f"{tmp}/run"),
            ("S3 (moto, loopback)", server.make_bucket("job") + "/run"),
        ):
            server0 = cpu_s(server.proc.pid)
            out = subprocess.run(
                [sys.executable, str(repo / "launch/mt80.py"), *overrides, f"run_dir={run_dir}"],
                env=env,
                capture_output=True,
                text=True,
                cwd=tmp,
            )
            server_cpu = cpu_s(server.proc.pid) - server0
            if out.returncode != 0:
                raise SystemExit(f"{label}: the job failed: {out.stderr[-2000:]}")
            s = ast.literal_eval([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
            print(
                f"{label:>20}: env steps/s {s['env_steps_per_s']:.1f}, updates/s {s['updates_per_s']:.2f} "
                f"({s['env_steps']} env steps, {s['updates']} updates, wall {s['wall_s']:.0f} s; S3 server CPU "
                f"{server_cpu:.1f} s)",
                flush=True,
            )
    shutil.rmtree(tmp, ignore_errors=True)


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far (Linux /proc): what the S3 server costs
    this machine's cores, which a real S3 endpoint would not."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rate(sample, seconds: float = 4.0) -> float:
    """Batches per second of `sample()` over about `seconds`."""
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        sample()
        n += 1
    return n / (time.perf_counter() - t)


# Run in a fresh process so its RSS says what a reader of this store costs.
REOPEN = """
import json, sys, time, numpy as np
def rss_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) / 1024
import distributed.replay.reader, distributed.replay.writer, agents.batch
from distributed.replay.reader import ShardReader
from distributed.replay.writer import ShardWriter
path, cache = sys.argv[1], int(sys.argv[2])
base = rss_mb()
t = time.perf_counter(); r = ShardReader(path, cache_bytes=cache); reader_s = time.perf_counter() - t
opened = rss_mb()
rng = np.random.default_rng(0)
for _ in range(30):  # 7680 windows: touches every chunk of a 1M-row store, so the cache fills
    r.sample(256, 3, rng)
t = time.perf_counter(); ShardWriter(path, obs_dim=39, action_dim=6).close(); writer_s = time.perf_counter() - t
print(json.dumps({"reader_open_s": reader_s, "writer_reopen_s": writer_s, "rss_base_mb": base,
                  "rss_after_open_mb": opened, "rss_after_sampling_mb": rss_mb(),
                  "cached_mb": r.cached_bytes / 2**20, "transitions": r.num_transitions}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", default=None, help="where to build the stores (default: a temp dir, removed)")
    parser.add_argument("--s3", action="store_true", help="compare local disk with an S3 server (--rows default 100k)")
    parser.add_argument(
        "--s3-job",
        default=None,
        metavar="OVERRIDES",
        help="compare a job's updates/s with run_dir local vs on the S3 server",
    )
    args = parser.parse_args()
    if args.s3_job:
        compare_job_s3(args.s3_job.split())
        return
    if args.s3:
        compare_s3(args.rows if args.rows != parser.get_default("rows") else 100_000)
        return
    root = Path(args.dir or tempfile.mkdtemp(prefix="replay-bench-"))
    try:
        big = root / "big"
        print(
            f"insert, durable=False (no fsync): {fill(big, args.rows, durable=False):,.0f} transitions/s "
            f"({args.rows:,} rows)"
        )
        print(
            f"insert, durable=True (fsync per commit): "
            f"{fill(root / 'durable', min(args.rows, 100_000), durable=True):,.0f} transitions/s"
        )
        shutil.rmtree(root / "durable")
        size = sum(f.stat().st_size for f in big.rglob("*") if f.is_file()) / 2**20
        print(f"store: {ShardReader(big).num_transitions:,} transitions, {size:.0f} MiB on disk")

        rng = np.random.default_rng(0)
        for cache_mb in (256, 32):
            r = ShardReader(big, cache_bytes=cache_mb << 20)
            r.sample(B, H, rng)
            label = "whole store fits" if cache_mb == 256 else "cache << store: most chunks come from disk"
            rate(lambda: r.sample(B, H, rng), seconds=8.0 if cache_mb == 256 else 2.0)  # warm the cache
            print(
                f"sample 1 shard, cache {cache_mb} MiB ({label}): "
                f"{rate(lambda: r.sample(B, H, rng)):.1f} batches/s of {B}x{H + 1} rows "
                f"(cached {r.cached_bytes / 2**20:.0f} MiB)"
            )
            print(f"  task-balanced: {rate(lambda: r.sample(B, H, rng, balance='task')):.1f} batches/s")

        shards = [root / f"shard{i}" for i in range(4)]
        for i, p in enumerate(shards):
            fill(p, args.rows // 4, durable=False, first_id=i << 40)
        m = MultiShardSampler(shards, cache_bytes=512 << 20)
        rate(lambda: m.sample(B, H, rng), seconds=8.0)  # warm
        print(
            f"sample 4 shards (each {args.rows // 4:,} rows), in the caller: "
            f"{rate(lambda: m.sample(B, H, rng)):.1f} batches/s"
        )
        m.start_prefetch(B, H, seed=0, depth=8)
        print(f"sample 4 shards, prefetch thread: {rate(lambda: m.next_batch(timeout=60)):.1f} batches/s")
        m.stop()

        for cache_mb in (64, 256):
            out = subprocess.run(
                [sys.executable, "-c", REOPEN, str(big), str(cache_mb << 20)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            f = json.loads(out)
            print(
                f"reopen {f['transitions']:,} transitions, cache {cache_mb} MiB: reader {f['reader_open_s']:.2f} s, "
                f"writer {f['writer_reopen_s']:.2f} s; RSS {f['rss_base_mb']:.0f} MiB after imports -> "
                f"{f['rss_after_open_mb']:.0f} MiB open -> {f['rss_after_sampling_mb']:.0f} MiB after 30 "
                f"batches (cache holds {f['cached_mb']:.0f} MiB)"
            )
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
