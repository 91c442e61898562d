"""Train one task (or a few) in one process: python launch/train.py task=walker-walk steps=50000"""
import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from distributed.trainer import Trainer, train_config_from  # noqa: E402


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    trainer = Trainer(train_config_from(OmegaConf.to_container(cfg, resolve=True)))
    summary = trainer.train()
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in summary.items()})


if __name__ == "__main__":
    main()
