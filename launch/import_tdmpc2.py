"""Import TD-MPC2's published multitask dataset chunks into a replay shard (resumable: re-run
the same command after an interruption).

    python launch/import_tdmpc2.py source=<dir of chunk*.pt> out=data/mt80/shard-000 task_set=mt80 [obs_dim=39]
    python launch/import_tdmpc2.py source=<dir> out=data/mt80 shards=8     # 8 processes -> data/mt80/shard-00N
    python launch/import_tdmpc2.py 'source=[a.pt,b.pt]' out=...             # files, imported in this order

Hydra overrides of `ImportOptions` below.

Chunks are the dict-of-tensors form (see distributed/offline/tdmpc2_format.py for the layout and
the one-line conversion of a pickled TensorDict). Train from the result with
`python launch/train.py task=mt80 num_runners=0 offline_data=data/mt80`.
"""

import os
import sys
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class ImportOptions:
    source: Any = "???"  # a directory of *.pt chunks, or chunk files (imported in this order)
    out: str = "???"  # replay shard to create or resume (with shards > 1: a directory for shard-000, ...)
    shards: int = 1  # import into this many shards in parallel processes
    obs_dim: int | None = None  # zero-pad observations to this width
    action_dim: int | None = None  # zero-pad actions to this width
    chunk_len: int | None = None  # replay chunk length in rows (default 1024)
    flush_every: int = 256  # commit every this many episodes
    fsync: bool = True  # false: faster; safe against kills, not power loss
    task_set: str | None = None  # the task set whose ids the files use (mt80, mt30): its names go into the store


def main() -> None:
    from distributed.offline.importer import import_tdmpc2, import_tdmpc2_sharded
    from launch.common import options

    a = options(ImportOptions)
    source = a.source if isinstance(a.source, str) else list(a.source)
    kw: dict[str, Any] = dict(
        obs_dim=a.obs_dim, action_dim=a.action_dim, chunk_len=a.chunk_len, flush_every=a.flush_every, durable=a.fsync
    )
    if a.task_set:
        from envs import UnknownNameError, load_task_set

        try:
            kw["task_names"] = list(load_task_set(a.task_set).names)
        except UnknownNameError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    try:
        if a.shards > 1:
            for report in import_tdmpc2_sharded(source, a.out, a.shards, **kw):
                print(report)
            return
        print(import_tdmpc2(source, a.out, **kw))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
