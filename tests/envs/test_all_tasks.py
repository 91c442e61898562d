"""Every catalogued task (all of mt80, every dm_control suite task, Meta-World MT50, Gymnasium
MuJoCo) builds, resets reproducibly and steps with the dims its task sets record, both through
`make_env` and as the Gymnasium id `latentfleet/<task>` (the two give the same observations)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import warnings

import gymnasium as gym
import numpy as np
import pytest

from envs import env_id, load_task_set, make_env, task_names, task_set_names, task_spec

ALL_TASKS = task_names()


@pytest.mark.parametrize("task", ALL_TASKS)
def test_builds_resets_and_steps_with_recorded_dims(task):
    spec = task_spec(task)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(env_id(task), seed=11)  # with Gymnasium's passive env checker on reset and step
        obs, _ = env.reset(seed=11)
        assert obs.dtype == np.float32 and obs.shape == (spec.obs_dim,)
        assert env.action_space.shape == (spec.action_dim,) and env.action_space.dtype == np.float32
        rng = np.random.default_rng(0)
        for _ in range(3):
            obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, spec.action_dim).astype(np.float32))
            assert obs.shape == (spec.obs_dim,) and obs.dtype == np.float32 and np.isfinite(obs).all()
            assert isinstance(reward, float) and np.isfinite(reward)
            assert isinstance(terminated, bool) and isinstance(truncated, bool) and not truncated
            assert info["success"] in (0.0, 1.0)
            if terminated:
                break
    assert not [str(w.message) for w in caught if "WARN:" in str(w.message)]  # Gymnasium's checker is content
    plain = make_env(task, seed=11)
    assert plain.action_space == env.action_space and plain.observation_space == env.observation_space
    np.testing.assert_array_equal(plain.reset(seed=11)[0], env.reset(seed=11)[0])
    env.close()


def test_every_task_is_in_a_set_and_sets_list_only_known_tasks():
    in_sets = set()
    for name in task_set_names():
        ts = load_task_set(name)
        assert len(set(ts.names)) == len(ts) and set(ts.names) <= set(ALL_TASKS)
        in_sets |= set(ts.names)
    assert in_sets == set(ALL_TASKS)  # no task quietly missing from every set
