"""The action contract every adapter enforces: the episode is live, the action has the task's
shape, and [-1, 1] maps linearly onto the simulator's own control range."""

from __future__ import annotations

import numpy as np

from envs.spec import TaskSpec


def simulator_action(spec: TaskSpec, done: bool, action, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Check `action` ([action_dim] in [-1, 1], clipped) and rescale it to [low, high] (float64)."""
    if done:
        raise RuntimeError(f"{spec.name}: episode is over; call reset() before step()")
    a = np.asarray(action, np.float64)
    if a.shape != (spec.action_dim,):
        raise ValueError(f"{spec.name}: action shape {a.shape}, expected ({spec.action_dim},)")
    a = np.clip(a, -1.0, 1.0)
    return low + (a + 1.0) * 0.5 * (high - low)
