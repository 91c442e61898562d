"""Import a published TD-MPC2 multitask checkpoint as a run directory of this project:

    python launch/import_checkpoint.py mt80-5M.pt task_set=mt80 model_size=5 out=runs/tdmpc2-mt80-5
        [overwrite=false] [planner.num_samples=512 ...]

Then plan / diagnose / transfer / finetune from `out`, e.g.
    python -m launch.diagnose checkpoint=runs/tdmpc2-mt80-5 tasks=walker-walk episodes=1
    python launch/transfer.py checkpoint=runs/tdmpc2-mt80-5 split=cartpole-length finetune_inits=[nearest]

Wiring only: see distributed/tdmpc2_checkpoint.py (run directory) and agents/tdmpc2_import.py (weights).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from distributed.config import PlannerOverrides  # noqa: E402


@dataclass
class ImportCheckpointOptions:
    file: str = "???"  # the TD-MPC2 checkpoint (may also come first, without file=)
    task_set: str = "???"  # mt80 | mt30
    model_size: str = "???"  # 1 | 5 | 19 | 48 | 317
    out: str = "???"  # the run directory to write
    overwrite: bool = False
    planner: PlannerOverrides = field(default_factory=PlannerOverrides)  # planner settings stored with the model


def parse_args(argv: list[str]) -> ImportCheckpointOptions:
    """Hydra overrides of ImportCheckpointOptions; a first argument without `=` is the file.
    Bad input: one line on stderr, exit status 2."""
    from launch.common import options

    argv = list(argv)
    if argv and "=" not in argv[0]:
        argv[0] = f"file={argv[0]}"
    return options(ImportCheckpointOptions, argv)


def main(argv: list[str]):
    from dataclasses import asdict

    from agents.tdmpc2_import import TDMPC2CheckpointError
    from distributed.tdmpc2_checkpoint import import_tdmpc2_checkpoint

    o = parse_args(argv)
    planner = {k: v for k, v in asdict(o.planner).items() if v is not None}
    try:
        out = import_tdmpc2_checkpoint(o.file, o.task_set, o.model_size, o.out, planner=planner, overwrite=o.overwrite)
    except (TDMPC2CheckpointError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {out} (checkpoint.pt, model.safetensors, run.json) from {o.file}")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
