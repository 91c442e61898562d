"""Train an RLlib baseline on our tasks and evaluate it with our evaluator:

    python launch/baseline.py algo=sac task=cartpole-swingup steps=20000
    python launch/baseline.py algo=ppo task=mt30 steps=1000000 num_env_runners=2
    ray job submit --working-dir . -- python launch/baseline.py algo=dreamerv3 task=walker-walk

Hydra overrides of `BaselineConfig` (distributed/baselines/run.py); RLlib's own settings as
`+training.<key>=...` and `+model.<key>=...`. The run directory has the layout of
launch/train.py's, so launch/compare.py reads both.
"""

import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> dict:
    from distributed.baselines.run import BaselineConfig, run_baseline
    from distributed.ray_session import init_ray, shutdown_ray
    from launch.common import options

    cfg = options(BaselineConfig, argv)  # an unknown algorithm or task, or a set the algorithm cannot take: exit 2
    how = init_ray(cfg.ray.address, cfg.ray.num_cpus, cfg.ray.temp_dir)
    print("ray:", how)
    try:
        summary = run_baseline(cfg)
    finally:
        if how != "already initialized":  # a Ray this run started (or joined): stop / leave it
            shutdown_ray()
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in summary.items()})
    return summary


if __name__ == "__main__":
    main()
