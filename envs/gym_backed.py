"""A raw Gymnasium-API simulator env (Meta-World, Gymnasium MuJoCo) under the project's contract:
actions in [-1, 1] rescaled to the simulator's bounds, action repeat, time limit, float32 obs,
`info["success"]` always present."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from envs.actions import simulator_action
from envs.spec import TaskSpec

if TYPE_CHECKING:
    import mujoco


@runtime_checkable
class _MujocoSimulator(Protocol):
    """A MuJoCo-backed simulator (Gymnasium's MujocoEnv, Meta-World's envs): its model and data."""

    model: mujoco.MjModel
    data: mujoco.MjData


class RepeatedActionEnv(gym.Env):
    """Wraps an *unwrapped* simulator env (no TimeLimit of its own) for one TaskSpec.

    The first `reset()` without a seed uses the construction seed, so `make_env(task, seed)`
    followed by `reset()` is reproducible.
    """

    metadata = {"render_modes": []}

    def __init__(self, sim: gym.Env, spec: TaskSpec, seed: int, success_key: str | None, reseed=None):
        self.sim = sim
        self._reseed = reseed  # for simulators whose reset(seed=...) ignores the seed
        self.spec_ = spec
        self._pending_seed: int | None = seed
        self._success_key = success_key
        if sim.action_space.shape != (spec.action_dim,):
            raise ValueError(
                f"{spec.name}: simulator action shape {sim.action_space.shape} != catalogue "
                f"({spec.action_dim},); fix envs/data/tasks.json"
            )
        if not isinstance(sim.action_space, gym.spaces.Box):
            raise ValueError(f"{spec.name}: simulator action space {sim.action_space} is not a Box")
        self._low = np.asarray(sim.action_space.low, np.float64)
        self._high = np.asarray(sim.action_space.high, np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (spec.action_dim,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (spec.obs_dim,), np.float32)
        self._t, self._done = 0, True

    @property
    def mj_model(self) -> mujoco.MjModel:
        """The compiled `mujoco.MjModel` being simulated."""
        return self._mujoco_sim().model

    @property
    def mj_data(self) -> mujoco.MjData:
        """The `mujoco.MjData` being simulated."""
        return self._mujoco_sim().data

    def _mujoco_sim(self) -> _MujocoSimulator:
        sim = self.sim.unwrapped
        if not isinstance(sim, _MujocoSimulator):
            raise TypeError(f"{self.spec_.name}: the simulator {type(sim).__name__} has no MuJoCo model/data")
        return sim

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is None:
            seed, self._pending_seed = self._pending_seed, None
        else:
            self._pending_seed = None
        super().reset(seed=seed)
        if seed is not None and self._reseed is not None:
            self._reseed(self.sim, seed)
        obs, _ = self.sim.reset(seed=seed)
        self._t, self._done = 0, False
        return self._obs(obs), {}

    def _obs(self, obs) -> np.ndarray:
        obs = np.asarray(obs, np.float32).ravel()
        if obs.shape != (self.spec_.obs_dim,):
            raise ValueError(
                f"{self.spec_.name}: simulator observation shape {obs.shape} != catalogue "
                f"({self.spec_.obs_dim},); fix envs/data/tasks.json"
            )
        return obs

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        sim_action = simulator_action(self.spec_, self._done, action, self._low, self._high).astype(
            self.sim.action_space.dtype
        )
        reward, terminated, success = 0.0, False, 0.0
        for _ in range(self.spec_.action_repeat):
            obs, r, terminated, _, info = self.sim.step(sim_action)
            reward += float(r)
            if self._success_key is not None:
                success = max(success, float(info.get(self._success_key, 0.0)))
            if terminated:
                break
        self._t += 1
        truncated = not terminated and self._t >= self.spec_.episode_length
        self._done = bool(terminated or truncated)
        return self._obs(obs), reward, bool(terminated), truncated, {"success": success}

    def close(self) -> None:
        self.sim.close()
