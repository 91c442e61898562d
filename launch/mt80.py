"""The main job: one world model on mt80 (or any task set) with Ray actors.

    python launch/mt80.py preset=laptop                                   # embedded local Ray
    ray job submit --working-dir . -- python launch/mt80.py preset=cluster  # a cluster
"""
import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from distributed.config import run_config_from  # noqa: E402
from distributed.coordinator import Coordinator  # noqa: E402
from distributed.ray_session import init_ray, shutdown_ray  # noqa: E402


def run(cfg: DictConfig) -> dict:
    values = OmegaConf.to_container(cfg, resolve=True)
    ray_opts = values.pop("ray", {}) or {}
    coordinator = Coordinator(run_config_from(values))  # validates config, tasks and run dir
    how = init_ray(ray_opts.get("address"), ray_opts.get("num_cpus"), ray_opts.get("temp_dir"))
    print("ray:", how)
    try:
        summary = coordinator.run()
    finally:
        coordinator.shutdown()
        if how != "already initialized":  # a Ray this run started (or joined): stop / leave it
            shutdown_ray()
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in summary.items()})
    return summary


@hydra.main(config_path="../configs", config_name="mt80", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
