"""The multitask wrapper: one observation and action size for every task of a TaskSet."""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np

from envs.catalog import VARIANT_SEP, task_spec
from envs.make import make_env
from envs.registration import task_env_spec
from envs.task_set import TaskSet, load_task_set


class PaddedEnv(gym.Wrapper):
    """Wraps one task of a set: observations zero-padded to `max_obs_dim` (float32); actions of
    size `max_action_dim` whose padded dims are dropped here, so they never reach the simulator.

    `.task_id`, `.action_mask` [max_action_dim] and `.spec_` (the TaskSpec) describe
    the task within its set; seeding, `info` and rendering (none) are the wrapped env's.
    """

    def __init__(self, env: gym.Env, task_set: TaskSet, task: str):
        super().__init__(env)
        self.task_id = task_set.index(task)
        self.spec_ = task_set.tasks[self.task_id]
        self.action_mask = task_set.action_masks()[self.task_id]  # [max_action_dim]
        self._obs_dim, self._max_obs = self.spec_.obs_dim, task_set.max_obs_dim
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (task_set.max_obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (task_set.max_action_dim,), np.float32)

    def _pad(self, obs: np.ndarray) -> np.ndarray:
        out = np.zeros(self._max_obs, np.float32)
        out[: self._obs_dim] = obs
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        obs, info = super().reset(seed=seed, options=options)
        return self._pad(obs), info

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(
                f"{self.spec_.name}: padded action shape {action.shape}, expected {self.action_space.shape}"
            )
        obs, reward, terminated, truncated, info = self.env.step(action[: self.spec_.action_dim])
        return self._pad(obs), float(reward), terminated, truncated, info


@functools.lru_cache(maxsize=64)
def _loads_back(task_set: TaskSet) -> bool:
    try:
        return load_task_set(task_set.name) == task_set
    except (KeyError, ValueError):
        return False


def make_padded_env(task_set: TaskSet, task: str, seed: int = 0) -> PaddedEnv:
    """`make_env(task, seed)` wrapped to the set's padded dims; `.task_id`, `.action_mask`, `.spec_`.

    Its `.spec` (id `latentfleet/<task>`) rebuilds the same env with `gymnasium.make(env.spec)`.
    """
    env = PaddedEnv(make_env(task, seed), task_set, task)
    # a set that loads back from its name is recorded by name, so the spec stays plain data
    env.unwrapped.spec = task_env_spec(task, seed, task_set.name if _loads_back(task_set) else task_set)
    return env


def make_task_env(
    task: str,
    seed: int = 0,
    task_set: str | TaskSet | None = None,
    variant: str | None = None,
    render_mode: str | None = None,
) -> PaddedEnv:
    """The entry point of the `latentfleet/<task>` Gymnasium ids (see envs/registration.py):
    `task` (a base name) with an optional variant suffix, padded to `task_set` (a name or a
    TaskSet; default: the task alone, i.e. no padding)."""
    if render_mode is not None:
        raise ValueError(
            f"latentfleet/{task}: render_mode={render_mode!r} is not supported; these envs "
            "do not render (metadata render_modes is empty): leave render_mode unset"
        )
    name = task_spec(f"{task}{VARIANT_SEP}{variant}" if variant else task).name  # sets list canonical names
    ts = task_set if isinstance(task_set, TaskSet) else load_task_set(task_set or name)
    return make_padded_env(ts, name, seed)
