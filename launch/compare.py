"""Compare run directories (ours and RLlib baselines): one Markdown + CSV table and one plot of
eval return against env steps and against wall-clock seconds.

    python launch/compare.py runs=[runs/cartpole-swingup/tiny/s1,runs/baselines/sac/cartpole-swingup/s1] out=runs/compare

Hydra overrides of `CompareOptions` below.
"""

import os
import sys
from dataclasses import dataclass

from omegaconf import MISSING

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class CompareOptions:
    runs: list[str] = MISSING  # ("???") run directories (launch/train.py, launch/mt80.py, launch/baseline.py); required
    labels: list[str] | None = None  # one name per run (None: the directory names)
    out: str = "runs/compare"
    title: str | None = None


def main(argv: list[str] | None = None) -> None:
    from distributed.baselines.compare import compare_runs
    from launch.common import options

    o = options(CompareOptions, argv)
    try:
        result = compare_runs(o.runs, o.out, o.labels, o.title)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(result["files"]["md"].read_text())
    print("wrote", *(str(p) for p in result["files"].values()))


if __name__ == "__main__":
    main()
