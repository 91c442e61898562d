"""dm_control tasks through make_env: dims, dtypes, action repeat, time limit, seeding."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from envs import make_env, task_spec


@pytest.mark.parametrize("task", ["cartpole-balance", "cartpole-swingup", "walker-walk"])
def test_dims_dtype_and_time_limit(task):
    spec = task_spec(task)
    env = make_env(task, seed=3)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (spec.obs_dim,) and obs.dtype == np.float32
    assert env.action_space.shape == (spec.action_dim,)
    assert (env.action_space.low == -1).all() and (env.action_space.high == 1).all()
    rng = np.random.default_rng(0)
    for t in range(spec.episode_length):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, spec.action_dim))
        assert isinstance(reward, float) and info["success"] == 0.0 and not terminated
        assert truncated == (t == spec.episode_length - 1)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(spec.action_dim))


def test_action_repeat_advances_physics_twice_per_step():
    env = make_env("walker-walk", seed=0)
    env.reset(seed=0)
    t0 = env.physics.data.time
    env.step(np.zeros(6))
    assert env.physics.data.time - t0 == pytest.approx(2 * 0.025)  # walker control timestep 25 ms


def test_same_seed_same_first_observation_and_different_seed_differs():
    a = make_env("walker-walk", seed=5).reset(seed=5)[0]
    b = make_env("walker-walk", seed=5).reset(seed=5)[0]
    c = make_env("walker-walk", seed=6).reset(seed=6)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_wrong_action_shape_is_rejected():
    env = make_env("cartpole-swingup")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"expected \(1,\)"):
        env.step(np.zeros(3))
