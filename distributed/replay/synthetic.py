"""Deterministic synthetic episodes for tests and bench/replay.py.

An episode is a pure function of (seed, episode_id), so a checker can regenerate what a
(possibly killed) writer wrote. obs[:, 0] is the episode id and obs[:, 1] the row number,
so any sampled window can be traced back to its episode and start row.
"""

from __future__ import annotations

import numpy as np


def synthetic_episode(
    episode_id: int,
    *,
    obs_dim: int,
    action_dim: int,
    max_len: int = 200,
    num_tasks: int = 4,
    seed: int = 0,
    task: int | None = None,
    length: int | None = None,
) -> dict:
    """One episode dict (ShardWriter.add_episode's arguments): obs [T+1, O], action [T+1, A],
    reward/terminated/truncated [T+1], task. T+1 is `length` or drawn in [2, max_len]."""
    rng = np.random.default_rng([seed, episode_id])
    n = length if length is not None else int(rng.integers(2, max_len + 1))
    obs = rng.standard_normal((n, obs_dim)).astype(np.float32)
    obs[:, 0] = episode_id
    obs[:, 1] = np.arange(n)
    action = rng.uniform(-1, 1, (n, action_dim)).astype(np.float32)
    action[0] = 0
    reward = rng.uniform(0, 1, n).astype(np.float32)
    reward[0] = 0
    terminated = np.zeros(n, bool)
    truncated = np.zeros(n, bool)
    (terminated if rng.random() < 0.5 else truncated)[-1] = True
    return {
        "obs": obs,
        "action": action,
        "reward": reward,
        "terminated": terminated,
        "truncated": truncated,
        "task": int(task if task is not None else rng.integers(0, num_tasks)),
    }
