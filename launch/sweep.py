"""Sweep model sizes, planner settings, task sets (any train.yaml override) as Ray Tune trials.

    python launch/sweep.py name=sizes 'base=["task=walker-walk","steps=100000"]' '+grid.model_size=[1,5]' 'seeds=[1,2]'

Joins the cluster from RAY_ADDRESS / `ray job submit`, else starts an embedded local Ray.
Re-running the same command resumes the sweep; finished trials are not rerun. See configs/sweep.yaml.
"""
import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from distributed.ray_session import init_ray  # noqa: E402
from distributed.sweep import run_sweep, sweep_config_from  # noqa: E402


@hydra.main(config_path="../configs", config_name="sweep", version_base="1.3")
def main(cfg: DictConfig) -> None:
    sweep = sweep_config_from(OmegaConf.to_container(cfg, resolve=True))
    init_ray()
    out = run_sweep(sweep, verbose=1)
    print(out["files"]["md"].read_text())
    print(f"trained now: {len(out['trained'])}, already done: {len(out['skipped'])}, errors: {len(out['errors'])}")
    for slug, err in out["errors"].items():
        print(f"  {slug}: {err}")


if __name__ == "__main__":
    main()
