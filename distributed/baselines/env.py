"""Our tasks as RLlib environments, built through the same `envs` factory as our runs.

The env id of a task or task set is `latentfleet/<name>` (e.g. `latentfleet/cartpole-swingup`,
`latentfleet/mt30`); `register_env(name)` registers it with `ray.tune.registry`, and RLlib's
EnvRunners build it from `env_config`:

- `task_set`: a task, a comma-separated list or a set name (`envs.load_task_set`);
- `task`: optional, one member of the set to run alone (default: every episode draws a member
  uniformly at random, from an RNG seeded by the episode's reset seed);
- `seed`: the simulator build seed of `envs.make_padded_env`;
- `task_one_hot`: append the task id one-hot to the observation (default: when the set has more
  than one task), so one policy can tell the tasks apart;
- `max_episode_steps`: optional cap on episode length (short smoke runs).

Observations are the padded observations of `envs.PaddedEnv` (identical to ours, then the
optional one-hot); actions are padded to the set's `max_action_dim` and the padded dims are
dropped before the simulator, exactly as in our runs.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

ENV_PREFIX = "latentfleet/"


def env_id(task_set: str) -> str:
    return ENV_PREFIX + task_set


def policy_obs(obs: np.ndarray, task_ids: np.ndarray, num_tasks: int, one_hot: bool) -> np.ndarray:
    """Padded observations [B, max_obs_dim] as the policy sees them (one-hot task id appended when
    `one_hot`): the same transform in training (the env) and in our evaluator."""
    obs = np.asarray(obs, np.float32)
    if not one_hot:
        return obs
    return np.concatenate([obs, np.eye(num_tasks, dtype=np.float32)[np.asarray(task_ids, np.int64)]], axis=-1)


class LatentfleetEnv(gym.Env):
    """One of our tasks (or a task set, one member per episode) for RLlib; see the module doc."""

    metadata = {"render_modes": []}

    def __init__(self, config: dict | None = None):
        from envs import load_task_set, make_padded_env

        config = dict(config or {})
        if "task_set" not in config:
            raise ValueError("LatentfleetEnv needs env_config['task_set'] (a task, a list or a set name)")
        self.task_set = load_task_set(config["task_set"])
        task = config.get("task")
        self.tasks = [task] if task is not None else list(self.task_set.names)
        for t in self.tasks:
            self.task_set.index(t)  # an unknown member raises with the closest names
        seed = int(config.get("seed", 0))
        self.envs = {t: make_padded_env(self.task_set, t, seed=seed) for t in self.tasks}
        self.one_hot = bool(config.get("task_one_hot", len(self.task_set) > 1))
        self.max_episode_steps = config.get("max_episode_steps")
        extra = len(self.task_set) if self.one_hot else 0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.task_set.max_obs_dim + extra,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.task_set.max_action_dim,), np.float32)
        self._rng = np.random.default_rng(seed)
        self.current = self.tasks[0]
        self._t = 0

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        return policy_obs(obs[None], np.array([self.task_set.index(self.current)]), len(self.task_set), self.one_hot)[0]

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        if len(self.tasks) > 1:
            self.current = self.tasks[int(self._rng.integers(len(self.tasks)))]
        self._t = 0
        obs, info = self.envs[self.current].reset(seed=seed, options=options)
        return self._obs(obs), info

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.envs[self.current].step(np.asarray(action, np.float32))
        self._t += 1
        if self.max_episode_steps is not None and self._t >= self.max_episode_steps:
            truncated = True
        return self._obs(obs), float(reward), bool(terminated), bool(truncated), info

    def close(self) -> None:
        for env in self.envs.values():
            env.close()


def make_rllib_env(env_config, task_set: str | None = None) -> LatentfleetEnv:
    """The env of `env_config` (an RLlib EnvContext or a dict); `task_set` is the default set."""
    config = dict(env_config or {})
    if task_set is not None:
        config.setdefault("task_set", task_set)
    return LatentfleetEnv(config)


def register_env(task_set: str) -> str:
    """Register `latentfleet/<task_set>` with RLlib (idempotent); returns the env id. Its
    env_config may leave out `task_set` (it is the registered name)."""
    import functools

    from ray.tune.registry import register_env as tune_register_env

    name = env_id(task_set)
    tune_register_env(name, functools.partial(make_rllib_env, task_set=task_set))
    return name


def register_all_envs() -> list[str]:
    """Register every catalogued task and predefined task set (`latentfleet/walker-walk`,
    `latentfleet/mt30`, ...), for using them from RLlib directly; returns the env ids."""
    from envs import task_names, task_set_names

    return [register_env(name) for name in (*task_names(), *task_set_names())]
