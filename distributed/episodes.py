"""Episode records in the replay row convention (see agents/batch.py).

An episode of T agent steps is T+1 rows; row 0 holds the first observation with zero
action/reward, row t holds (obs_t, action_{t-1}, reward_{t-1}, terminated_{t-1}, truncated_{t-1}).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class EpisodeBuilder:
    """Accumulates one environment's steps until the episode ends."""
    task: int
    obs_dim: int
    action_dim: int
    obs: list = field(default_factory=list)
    action: list = field(default_factory=list)
    reward: list = field(default_factory=list)
    terminated: list = field(default_factory=list)
    truncated: list = field(default_factory=list)
    success: float = 0.0

    def start(self, obs: np.ndarray) -> None:
        self.obs = [np.asarray(obs, np.float32)]
        self.action = [np.zeros(self.action_dim, np.float32)]
        self.reward, self.terminated, self.truncated = [0.0], [False], [False]
        self.success = 0.0

    def add(self, action, obs, reward, terminated, truncated, success: float = 0.0) -> None:
        self.obs.append(np.asarray(obs, np.float32))
        self.action.append(np.asarray(action, np.float32))
        self.reward.append(float(reward))
        self.terminated.append(bool(terminated))
        self.truncated.append(bool(truncated))
        self.success = max(self.success, float(success))

    @property
    def length(self) -> int:
        return len(self.obs) - 1

    def finish(self) -> dict:
        """The episode as a dict of arrays (keys as ShardWriter.add_episode takes them) plus
        'task', 'return', 'success' and 'length'."""
        return {
            "obs": np.stack(self.obs), "action": np.stack(self.action),
            "reward": np.asarray(self.reward, np.float32),
            "terminated": np.asarray(self.terminated, bool), "truncated": np.asarray(self.truncated, bool),
            "task": int(self.task), "return": float(np.sum(self.reward)), "success": float(self.success),
            "length": self.length,
        }
