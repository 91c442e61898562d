"""Train an RLlib baseline on our tasks and evaluate it with our evaluator:

    python launch/baseline.py algo=sac task=cartpole-swingup steps=20000
    python launch/baseline.py algo=ppo task=mt30 steps=1000000 num_env_runners=2
    ray job submit --working-dir . -- python launch/baseline.py algo=dreamerv3 task=walker-walk

Options: configs/baseline.yaml. The run directory has the layout of launch/train.py's, so
launch/compare.py reads both.
"""
import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from distributed.baselines.run import baseline_config_from, run_baseline  # noqa: E402
from distributed.ray_session import init_ray, shutdown_ray  # noqa: E402


def run(cfg: DictConfig) -> dict:
    values = OmegaConf.to_container(cfg, resolve=True)
    ray_opts = values.pop("ray", {}) or {}
    try:  # an unknown algorithm or task, or a set the algorithm cannot take: a clear error before Ray starts
        config = baseline_config_from(values)
    except (ValueError, KeyError) as err:  # BaselineError, envs.UnknownNameError, bad options
        sys.exit(f"error: {err}")
    how = init_ray(ray_opts.get("address"), ray_opts.get("num_cpus"), ray_opts.get("temp_dir"))
    print("ray:", how)
    try:
        summary = run_baseline(config)
    finally:
        if how != "already initialized":  # a Ray this run started (or joined): stop / leave it
            shutdown_ray()
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in summary.items()})
    return summary


@hydra.main(config_path="../configs", config_name="baseline", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
