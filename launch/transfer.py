"""Zero-shot and few-shot transfer to held-out bodies. Train first on the split's training tasks
only, with a descriptor-conditioned model (python launch/train.py task=split:cartpole-length
model.task_conditioning=both ...), then:

    python launch/transfer.py checkpoint=runs/cartpole-length split=cartpole-length finetune_steps=2000
        ['finetune_inits=[descriptor,nearest]'] [planner.num_samples=128] [out_dir=...]

A language-conditioned model (model.task_conditioning=language, descriptor+language, ...) can be
given a held-out task by free text instead of its generated description:

    python launch/transfer.py checkpoint=runs/cartpole-lang split=cartpole-length finetune_steps=0 \
        'held_out=[cartpole-swingup@length=1.7]' \
        'held_out_text=["Cart-pole with a very long pole. Task: swing the pole up and balance it."]'

Compare conditionings in one table: runs trained on the same split with other conditionings add
their feature map's zero-shot column ('compare_checkpoints=[runs/cartpole-lang,runs/cartpole-desc-lang]').

Hydra overrides of `TransferConfig` (distributed/transfer.py, which says what is measured);
writes transfer.md/.csv/.png to out_dir (default <checkpoint>/transfer).
"""

import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> None:
    from distributed.transfer import TransferConfig, TransferExperiment
    from launch.common import options

    cfg = options(TransferConfig, argv)
    try:  # checkpoint, split, held-out leak check, parameter groups: before any run
        experiment = TransferExperiment(cfg)
    except (ValueError, LookupError, FileNotFoundError, ImportError) as exc:  # ImportError: the text encoder
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    experiment.run()
    print(f"wrote {experiment.out / 'transfer.md'}")
    print((experiment.out / "transfer.md").read_text())


if __name__ == "__main__":
    main()
