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
    shipped: int = 0  # window starts below this row were handed over in earlier pieces

    def start(self, obs: np.ndarray) -> None:
        self.obs = [np.asarray(obs, np.float32)]
        self.action = [np.zeros(self.action_dim, np.float32)]
        self.reward, self.terminated, self.truncated = [0.0], [False], [False]
        self.success = 0.0
        self.shipped = 0

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

    def _rows(self, first: int) -> dict:
        """Rows [first, end) in the row convention: a piece's first row carries no action, reward
        or flag (a window starting there never reads them)."""
        action, reward = np.stack(self.action[first:]), np.asarray(self.reward[first:], np.float32)
        terminated, truncated = np.asarray(self.terminated[first:], bool), np.asarray(self.truncated[first:], bool)
        action[0], reward[0], terminated[0], truncated[0] = 0.0, 0.0, False, False
        return {
            "obs": np.stack(self.obs[first:]),
            "action": action,
            "reward": reward,
            "terminated": terminated,
            "truncated": truncated,
            "task": int(self.task),
        }

    def piece(self, horizon: int) -> dict | None:
        """The running episode's new training windows as a piece to store now (None if it has no
        new window of horizon+1 rows yet): rows [shipped, end). Consecutive pieces overlap by
        `horizon` rows, so every window of the episode is in exactly one piece."""
        end = len(self.obs)
        if end - horizon <= self.shipped:
            return None
        out = {**self._rows(self.shipped), "final": False}
        self.shipped = end - horizon
        return out

    def finish(self) -> dict:
        """The episode (or, after pieces, its last piece) as a dict of arrays (keys as
        ShardWriter.add_episode takes them), with 'final', and the whole episode's 'return',
        'success' and 'length'."""
        return {
            **self._rows(self.shipped),
            "final": True,
            "return": float(np.sum(self.reward)),
            "success": float(self.success),
            "length": self.length,
        }
