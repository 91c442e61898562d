"""Sweep model sizes, planner settings, task sets (any train.yaml override) as Ray Tune trials.

    python launch/sweep.py name=sizes 'base=["task=walker-walk","steps=100000"]' '+grid.model_size=[1,5]' 'seeds=[1,2]'

Hydra overrides of `SweepConfig` (distributed/sweep.py). Every trial's train config is composed
and checked before Ray starts. Joins the cluster from RAY_ADDRESS / `ray job submit`, else starts
an embedded local Ray. Re-running the same command resumes the sweep; finished trials are not rerun.
"""

import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> None:
    from distributed.config import ConfigError
    from distributed.ray_session import init_ray
    from distributed.sweep import SweepConfig, run_sweep, sweep_trials
    from launch.common import options

    cfg = options(SweepConfig, argv)
    try:
        trials = sweep_trials(cfg)
    except ConfigError as exc:
        print(f"error: a trial's train config: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    init_ray()
    out = run_sweep(cfg, trials=trials, verbose=1)
    print(out["files"]["md"].read_text())
    print(f"trained now: {len(out['trained'])}, already done: {len(out['skipped'])}, errors: {len(out['errors'])}")
    for slug, err in out["errors"].items():
        print(f"  {slug}: {err}")


if __name__ == "__main__":
    main()
