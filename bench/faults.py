"""Fault injection: SIGKILL (a real OS signal) of shard writers, of actors inside a running Ray job,
and of a whole job; after each kill, every episode committed before it must still be there byte
for byte, none twice, nothing uncommitted visible, and the writer / job must carry on.

    .venv/bin/python bench/faults.py               # everything: 22 min on 2 cores at load 13-19
    .venv/bin/python bench/faults.py --only writer # the shard-writer scenarios only (12 min of that)
    .venv/bin/python bench/faults.py --only corrupt # one committed chunk damaged on disk (seconds)
    .venv/bin/python bench/faults.py --only writer --store s3  # the same with the shards on an S3
                                                   # server (moto, started on loopback; writer lease 2 s)
    .venv/bin/python bench/faults.py --only actors --store s3  # (or job) the job's run directory in a
                                                   # bucket there: the shard restarted by Ray, or the job
                                                   # resumed, takes the dead writer's lease over

Prints one row per scenario: kills, committed (distinct episodes known committed before a kill),
lost, corrupt, duplicated, uncommitted (visible although never committed); exits 1 unless the
last four are all 0. The scenarios are distributed/testing/faults.py's; tests/distributed/test_faults.py
runs them smaller.

What counts as committed: what a commit record covered. A reader process samples the shards
while the writers run and logs every episode it sees committed with a SHA-256 of its bytes (obs,
action, reward, terminated, truncated, task); the store is also read after every kill. Writer
episodes are synthetic (distributed/replay/synthetic.py), so their bytes are also recomputed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distributed.testing.faults import (  # noqa: E402
    C,
    Tally,
    actors_scenario,
    corrupt_chunk_scenario,
    job_scenario,
    writer_scenario,
)


def print_table(tallies: list[Tally], header: str = "") -> str:
    cols = (
        "scenario",
        "kills",
        "committed",
        "lost",
        "corrupt",
        "duplicated",
        "uncommitted",
        "continues",
        "counters vs store",
    )
    rows = [
        (t.scenario, t.kills, t.committed, t.lost, t.corrupt, t.duplicated, t.uncommitted, t.resumed, t.counters)
        for t in tallies
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    text = (header + "\n\n" if header else "") + "\n".join(lines)
    problems = [f"- {t.scenario}: {p}" for t in tallies for p in t.problems]
    if problems:
        text += "\n\n" + "\n".join(problems)
    print(text, flush=True)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=("writer", "corrupt", "actors", "job"), default=None)
    ap.add_argument("--random-kills", type=int, default=50)
    ap.add_argument("--point-kills", type=int, default=5)
    ap.add_argument("--commit-kill", default="commit-record:15", help="kill point of the whole-job commit kill")
    ap.add_argument("--out", default=None, help="also write the table (markdown) to this file")
    ap.add_argument(
        "--store",
        choices=("local", "s3"),
        default="local",
        help="shards and runs on local disk, or on an S3 server (moto) started on loopback (there, no "
        "corrupt-chunk row, which damages a file on disk, and no checkpoint-write kill: a PUT is whole)",
    )
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    tallies = []
    work = Path(tempfile.mkdtemp(prefix="faults"))
    server = store = None
    if args.store == "s3":
        from distributed.testing.s3_server import S3Server

        server = S3Server().start()
        os.environ.update(server.environ, **{"LATENTFLEET_LEASE_S": "2"})  # the writers, reader, jobs inherit it
        store = server.make_bucket("latentfleet-faults")
    try:
        if args.only in (None, "writer"):
            shards = None if store is None else store + "/shards"
            for point in ("chunk-data", "index", "commit-record"):
                tallies.append(writer_scenario(work, point, [point] * args.point_kills, store=shards))
            tallies.append(
                writer_scenario(work, "eviction", ["eviction"] * args.point_kills, capacity=12 * C, store=shards)
            )
            tallies.append(writer_scenario(work, "random moments", [None] * args.random_kills, store=shards))
        if args.only in (None, "writer", "corrupt") and store is None:  # damages a chunk file on disk
            tallies.append(corrupt_chunk_scenario(work))
        if args.only in (None, "actors", "job"):
            import ray

            ray.init(
                num_cpus=2,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                _temp_dir=tempfile.mkdtemp(prefix="ray", dir="/tmp"),
            )
            runs = None if store is None else store + "/runs"
            try:
                if args.only in (None, "actors"):
                    tallies.append(actors_scenario(work, root=runs))
                if args.only in (None, "job"):
                    if store is None:  # on an object store a checkpoint is one PUT: there is no write to cut short
                        tallies.append(job_scenario(work, "checkpoint-write:2"))
                    tallies.append(job_scenario(work, args.commit_kill, root=runs))
            finally:
                ray.shutdown()
    finally:
        if server is not None:
            server.stop()
    header = (
        f"`{' '.join(['bench/faults.py', *sys.argv[1:]])}` on {os.cpu_count()} cores, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, torch threads 1, "
        f"shards and runs on {'an S3 server (moto, loopback; lease 2 s)' if args.store == 's3' else 'local disk'}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    text = print_table(tallies, header)
    if args.out:
        Path(args.out).write_text(text + "\n")
    with contextlib.suppress(OSError):
        import shutil

        shutil.rmtree(work)
    return 0 if all(t.clean for t in tallies) else 1


if __name__ == "__main__":
    sys.exit(main())
