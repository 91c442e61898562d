"""dm_control tasks (the 51 of the suite plus the TD-MPC2 custom ones) behind the Gymnasium API."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
import numpy as np

from envs.actions import simulator_action
from envs.errors import MissingPackageError
from envs.spec import TaskSpec

# Action bounds at least this large are treated as unbounded (lqr): the agent's [-1, 1] passes through.
_UNBOUNDED = 1e6


def _import_suite(task: str):
    try:
        return importlib.import_module("dm_control.suite")
    except ImportError as err:
        raise MissingPackageError(task, "dm_control", "dm-control") from err


def load_dmc(task: str, domain: str, task_name: str, seed: int, xml_edit=None):
    """Build the raw dm_control Environment for (domain, task_name) with no time limit of its own.

    `xml_edit`, if given, maps the domain's MuJoCo spec to an edited one (procedural variants);
    it receives a `mujoco.MjSpec` and edits it in place.
    """
    suite = _import_suite(task)
    from envs.dmc_custom import CUSTOM_TASKS, REBUILT_SUITE_TASKS  # looked up here: nothing registered globally

    kwargs = {"random": seed, "time_limit": float("inf")}  # our wrapper owns the time limit
    builder = CUSTOM_TASKS.get((domain, task_name)) or REBUILT_SUITE_TASKS.get((domain, task_name))
    env = builder(**kwargs) if builder else suite.load(domain, task_name, task_kwargs=kwargs)
    if xml_edit is not None:
        from envs.dmc_models import edited_xml
        from envs.total_mass import set_total_mass

        xml, assets, total_mass = edited_xml(domain, task_name, xml_edit)
        env.physics.reload_from_xml_string(xml, assets)
        set_total_mass(env.physics.model.ptr, total_mass)
    return env


class DMControlEnv(gym.Env):
    """A dm_control Environment as a Gymnasium env: flat float32 observations, actions in [-1, 1]
    rescaled to the actuator ranges, `action_repeat` physics control steps per agent step (rewards
    summed), truncation at `episode_length` agent steps."""

    metadata = {"render_modes": []}

    def __init__(self, dm_env, spec: TaskSpec):
        self._env = dm_env
        self.spec_ = spec
        aspec = dm_env.action_spec()
        if aspec.shape != (spec.action_dim,):
            raise ValueError(
                f"{spec.name}: simulator action shape {aspec.shape} != catalogue "
                f"({spec.action_dim},); fix envs/data/tasks.json"
            )
        low, high = aspec.minimum.astype(np.float64), aspec.maximum.astype(np.float64)
        bounded = (np.abs(low) < _UNBOUNDED) & (np.abs(high) < _UNBOUNDED)
        self._low = np.where(bounded, low, -1.0)
        self._high = np.where(bounded, high, 1.0)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (spec.action_dim,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (spec.obs_dim,), np.float32)
        self._t = 0
        self._done = True

    @property
    def physics(self):
        """The dm_control Physics (MuJoCo model and data) of this env."""
        return self._env.physics

    @property
    def mj_model(self):
        """The compiled `mujoco.MjModel` being simulated."""
        return self._env.physics.model.ptr

    def _obs(self, observation) -> np.ndarray:
        obs = np.concatenate([np.asarray(v, np.float32).ravel() for v in observation.values()])
        if obs.shape != (self.spec_.obs_dim,):
            raise ValueError(
                f"{self.spec_.name}: simulator observation shape {obs.shape} != catalogue "
                f"({self.spec_.obs_dim},); fix envs/data/tasks.json"
            )
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            # dm_control draws initial states from the task's RandomState; reseeding it makes resets reproducible
            self._env.task._random = np.random.RandomState(seed)
        ts = self._env.reset()
        self._t, self._done = 0, False
        return self._obs(ts.observation), {}

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        sim_action = simulator_action(self.spec_, self._done, action, self._low, self._high)
        reward = 0.0
        for _ in range(self.spec_.action_repeat):
            ts = self._env.step(sim_action)
            reward += float(ts.reward or 0.0)
            if ts.last():
                break
        self._t += 1
        terminated = bool(ts.last() and ts.discount == 0.0)
        truncated = not terminated and (self._t >= self.spec_.episode_length or ts.last())
        self._done = terminated or truncated
        return self._obs(ts.observation), reward, terminated, truncated, {"success": 0.0}

    def close(self) -> None:
        self._env.close()
