"""Import TD-MPC2's published multitask dataset chunks into a replay shard (resumable: re-run
the same command after an interruption).

    python launch/import_tdmpc2.py <dir of chunk*.pt | files...> --out data/mt80/shard-000 [--obs-dim 39]

Chunks are the dict-of-tensors form (see distributed/offline/tdmpc2_format.py for the layout and
the one-line conversion of a pickled TensorDict). Train from the result with
`python -m distributed.offline.train data=data/mt80 task=mt80`.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from distributed.offline.importer import import_tdmpc2  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", nargs="+", help="a directory of *.pt chunks, or chunk files (imported in this order)")
    p.add_argument("--out", required=True, help="replay shard directory to create or resume")
    p.add_argument("--obs-dim", type=int, default=None, help="zero-pad observations to this width")
    p.add_argument("--action-dim", type=int, default=None, help="zero-pad actions to this width")
    p.add_argument("--chunk-len", type=int, default=None, help="replay chunk length in rows (default 1024)")
    p.add_argument("--flush-every", type=int, default=256, help="commit every this many episodes")
    a = p.parse_args()
    source = a.source[0] if len(a.source) == 1 else a.source
    report = import_tdmpc2(source, a.out, obs_dim=a.obs_dim, action_dim=a.action_dim, chunk_len=a.chunk_len,
                           flush_every=a.flush_every)
    print(report)


if __name__ == "__main__":
    main()
