"""Import a published TD-MPC2 multitask checkpoint as a run directory of this project:

    python launch/import_checkpoint.py mt80-5M.pt task_set=mt80 model_size=5 out=runs/tdmpc2-mt80-5
        [overwrite=false] [planner.num_samples=512 ...]

Then plan / diagnose / transfer / finetune from `out`, e.g.
    python -m launch.diagnose checkpoint=runs/tdmpc2-mt80-5 tasks=walker-walk episodes=1
    python launch/transfer.py checkpoint=runs/tdmpc2-mt80-5 split=cartpole-length finetune_inits=[nearest]

Wiring only: see distributed/tdmpc2_checkpoint.py (run directory) and agents/tdmpc2_import.py (weights).
"""
from __future__ import annotations

import difflib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

KEYS = ("task_set", "model_size", "out", "overwrite")


def parse_args(argv: list[str]) -> tuple[str, dict, dict]:
    """(file, options, planner overrides) from `<file> key=value ...`; bad input exits with a message."""
    files = [a for a in argv if "=" not in a]
    if len(files) != 1:
        raise SystemExit(f"give exactly one checkpoint file before the key=value options, got {files or 'none'}\n"
                         + __doc__)
    opts, planner = {"overwrite": "false"}, {}
    for item in argv:
        if "=" not in item:
            continue
        key, _, value = item.partition("=")
        if key.startswith("planner."):
            planner[key[len("planner."):]] = _number(value)
        elif key in KEYS:
            opts[key] = value
        else:
            raise SystemExit(f"unknown key {key!r}; known: {list(KEYS)} and planner.<field> "
                             f"(closest: {difflib.get_close_matches(key, KEYS, n=2)})")
    missing = [k for k in ("task_set", "model_size", "out") if k not in opts]
    if missing:
        raise SystemExit(f"missing {', '.join(f'{k}=' for k in missing)}: e.g. task_set=mt80 model_size=5 "
                         f"out=runs/tdmpc2-mt80-5")
    if opts["overwrite"].lower() not in ("true", "false"):
        raise SystemExit(f"overwrite must be true or false, got {opts['overwrite']!r}")
    opts["overwrite"] = opts["overwrite"].lower() == "true"
    return files[0], opts, planner


def _number(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return None if value.lower() in ("null", "none") else value


def main(argv: list[str]):
    from distributed.tdmpc2_checkpoint import import_tdmpc2_checkpoint

    file, opts, planner = parse_args(argv)
    out = import_tdmpc2_checkpoint(file, opts["task_set"], opts["model_size"], opts["out"], planner=planner,
                                   overwrite=opts["overwrite"])
    print(f"wrote {out} (checkpoint.pt, model.safetensors, run.json) from {file}")
    return out


if __name__ == "__main__":
    from agents.tdmpc2_import import TDMPC2CheckpointError

    try:
        main(sys.argv[1:])
    except (TDMPC2CheckpointError, FileNotFoundError, FileExistsError) as exc:
        raise SystemExit(f"import_checkpoint: {exc}") from None
