"""The training batch: the one contract between replay (distributed/replay) and the learner.

A replay sampler returns a dict of numpy arrays with exactly these keys and shapes;
`Batch.from_numpy` turns it into tensors on a device.

Row convention of the store (TD-MPC2's): an episode of T agent steps is T+1 rows;
row 0 holds the first observation (action and reward are zero there), row t>=1 holds
(obs_t, action_{t-1}, reward_{t-1}, terminated_{t-1}). A window of H+1 rows starting at
row s therefore gives obs[0..H] and the H actions/rewards that connect them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# The replay layer (and its shard actor processes) imports this module for BATCH_KEYS alone:
# torch is imported where tensors are made, so a replay shard never pays for loading torch.
BATCH_KEYS = ("obs", "action", "reward", "terminated", "task", "action_mask")


@dataclass
class Batch:
    obs: torch.Tensor  # [H+1, B, O] float32, zero-padded to the task set's max obs dim
    action: torch.Tensor  # [H, B, A] float32, padded dims are exactly 0
    reward: torch.Tensor  # [H, B] float32
    terminated: torch.Tensor  # [H, B] float32 in {0, 1}
    task: torch.Tensor  # [B] int64 task ids
    action_mask: torch.Tensor  # [B, A] float32 in {0, 1}

    @property
    def horizon(self) -> int:
        return self.action.shape[0]

    @property
    def size(self) -> int:
        return self.action.shape[1]

    @classmethod
    def from_numpy(cls, arrays: dict[str, np.ndarray], device: torch.device | str = "cpu") -> Batch:
        missing = [k for k in BATCH_KEYS if k not in arrays]
        if missing:
            raise KeyError(f"batch is missing keys {missing}; a sampler must return {BATCH_KEYS}")
        import torch

        t = {k: torch.as_tensor(np.asarray(arrays[k])) for k in BATCH_KEYS}
        return cls(
            obs=t["obs"].float().to(device),
            action=t["action"].float().to(device),
            reward=t["reward"].float().to(device),
            terminated=t["terminated"].float().to(device),
            task=t["task"].long().to(device),
            action_mask=t["action_mask"].float().to(device),
        )
