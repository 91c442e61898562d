"""The multitask wrapper: one observation and action size for every task of a TaskSet."""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.make import make_env
from envs.task_set import TaskSet


class PaddedEnv(gym.Env):
    """Wraps one task of a set: observations zero-padded to `max_obs_dim`; actions of size
    `max_action_dim` whose padded dims are dropped here, so they never reach the simulator."""

    metadata = {"render_modes": []}

    def __init__(self, env: gym.Env, task_set: TaskSet, task: str):
        self.env = env
        self.task_id = task_set.index(task)
        self.spec_ = task_set.tasks[self.task_id]
        self.action_mask = task_set.action_masks()[self.task_id]  # [max_action_dim]
        self.discount = float(task_set.discounts()[self.task_id])
        self._obs_dim, self._max_obs = self.spec_.obs_dim, task_set.max_obs_dim
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (task_set.max_obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (task_set.max_action_dim,), np.float32)

    def _pad(self, obs: np.ndarray) -> np.ndarray:
        out = np.zeros(self._max_obs, np.float32)
        out[: self._obs_dim] = obs
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self._pad(obs), info

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"{self.spec_.name}: padded action shape {action.shape}, "
                             f"expected {self.action_space.shape}")
        obs, reward, terminated, truncated, info = self.env.step(action[: self.spec_.action_dim])
        return self._pad(obs), reward, terminated, truncated, info

    def close(self) -> None:
        self.env.close()


def make_padded_env(task_set: TaskSet, task: str, seed: int = 0) -> PaddedEnv:
    """`make_env(task, seed)` wrapped to the set's padded dims; `.task_id`, `.action_mask`, `.spec_`."""
    return PaddedEnv(make_env(task, seed), task_set, task)
