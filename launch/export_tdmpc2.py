"""Export a replay store's episodes as TD-MPC2 dataset chunks (dict-of-tensors form).

    python launch/export_tdmpc2.py runs/<run>/replay --out exported/ [--episodes-per-file 1000]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from distributed.offline.exporter import export_tdmpc2  # noqa: E402
from distributed.batches import shard_paths  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store", nargs="+", help="replay shards, or directories of shard-*")
    p.add_argument("--out", required=True, help="output directory for <prefix>-NNNNN.pt")
    p.add_argument("--episodes-per-file", type=int, default=1000)
    p.add_argument("--obs-dim", type=int, default=None, help="cut zero padding back to this obs width")
    p.add_argument("--action-dim", type=int, default=None, help="cut zero padding back to this action width")
    p.add_argument("--with-terminated", action="store_true", help="also write the optional 'terminated' key")
    p.add_argument("--prefix", default="chunk")
    a = p.parse_args()
    files = export_tdmpc2(shard_paths(a.store), a.out, episodes_per_file=a.episodes_per_file, obs_dim=a.obs_dim,
                          action_dim=a.action_dim, with_terminated=a.with_terminated, prefix=a.prefix)
    print(f"wrote {len(files)} files to {a.out}")


if __name__ == "__main__":
    main()
