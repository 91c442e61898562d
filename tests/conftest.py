"""Shared test set-up: one torch thread (2-core CI machines), software EGL for MuJoCo."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402

torch.set_num_threads(1)
