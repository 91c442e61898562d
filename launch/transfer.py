"""Zero-shot and few-shot transfer to held-out bodies:
python launch/transfer.py checkpoint=runs/cartpole-length split=cartpole-length finetune_steps=2000

See distributed/transfer.py for what is measured; writes transfer.md/.csv/.png to out_dir."""
import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from distributed.transfer import TransferExperiment, transfer_config_from  # noqa: E402


@hydra.main(config_path="../configs", config_name="transfer", version_base="1.3")
def main(cfg: DictConfig) -> None:
    experiment = TransferExperiment(transfer_config_from(OmegaConf.to_container(cfg, resolve=True)))
    experiment.run()
    print(f"wrote {experiment.out / 'transfer.md'}")
    print((experiment.out / "transfer.md").read_text())


if __name__ == "__main__":
    main()
