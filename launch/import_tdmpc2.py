"""Import TD-MPC2's published multitask dataset chunks into a replay shard (resumable: re-run
the same command after an interruption).

    python launch/import_tdmpc2.py <dir of chunk*.pt | files...> --out data/mt80/shard-000 [--obs-dim 39]
    python launch/import_tdmpc2.py <dir> --out data/mt80 --shards 8     # 8 processes -> data/mt80/shard-00N

Chunks are the dict-of-tensors form (see distributed/offline/tdmpc2_format.py for the layout and
the one-line conversion of a pickled TensorDict). Train from the result with
`python launch/train.py task=mt80 num_runners=0 offline_data=data/mt80`.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from distributed.offline.importer import import_tdmpc2, import_tdmpc2_sharded  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", nargs="+", help="a directory of *.pt chunks, or chunk files (imported in this order)")
    p.add_argument("--out", required=True, help="replay shard directory to create or resume (with --shards: "
                                                "a directory for shard-000, shard-001, ...)")
    p.add_argument("--shards", type=int, default=1, help="import into this many shards in parallel processes")
    p.add_argument("--obs-dim", type=int, default=None, help="zero-pad observations to this width")
    p.add_argument("--action-dim", type=int, default=None, help="zero-pad actions to this width")
    p.add_argument("--chunk-len", type=int, default=None, help="replay chunk length in rows (default 1024)")
    p.add_argument("--flush-every", type=int, default=256, help="commit every this many episodes")
    p.add_argument("--no-fsync", action="store_true", help="skip fsyncs (faster; safe against kills, not power loss)")
    a = p.parse_args()
    source = a.source[0] if len(a.source) == 1 else a.source
    if a.shards > 1:
        for report in import_tdmpc2_sharded(source, a.out, a.shards, obs_dim=a.obs_dim, action_dim=a.action_dim,
                                            chunk_len=a.chunk_len, flush_every=a.flush_every, durable=not a.no_fsync):
            print(report)
        return
    report = import_tdmpc2(source, a.out, obs_dim=a.obs_dim, action_dim=a.action_dim, chunk_len=a.chunk_len,
                           flush_every=a.flush_every, durable=not a.no_fsync)
    print(report)


if __name__ == "__main__":
    main()
