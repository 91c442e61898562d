"""Export a replay store's episodes as TD-MPC2 dataset chunks (dict-of-tensors form).

    python launch/export_tdmpc2.py store=runs/<run>/replay out=exported/ [episodes_per_file=1000]

Hydra overrides of `ExportOptions` below.
"""

import os
import sys
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class ExportOptions:
    store: Any = "???"  # replay shards, or directories of shard-*
    out: str = "???"  # output directory for <prefix>-NNNNN.pt
    episodes_per_file: int = 1000
    obs_dim: int | None = None  # cut zero padding back to this obs width
    action_dim: int | None = None  # cut zero padding back to this action width
    with_terminated: bool = False  # also write the optional 'terminated' key
    prefix: str = "chunk"


def main() -> None:
    from distributed.batches import shard_paths
    from distributed.offline.exporter import export_tdmpc2
    from launch.common import options

    a = options(ExportOptions)
    try:
        files = export_tdmpc2(
            shard_paths(a.store if isinstance(a.store, str) else list(a.store)),
            a.out,
            episodes_per_file=a.episodes_per_file,
            obs_dim=a.obs_dim,
            action_dim=a.action_dim,
            with_terminated=a.with_terminated,
            prefix=a.prefix,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {len(files)} files to {a.out}")


if __name__ == "__main__":
    main()
