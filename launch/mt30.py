"""mt30 (19 dm_control + 11 custom tasks) through the same machinery as launch/mt80.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from launch.mt80 import run  # noqa: E402


@hydra.main(config_path="../configs", config_name="mt30", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
