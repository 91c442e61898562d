"""Gymnasium conventions: `check_env` passes on the padded envs of every domain and of a task
set, `latentfleet/<task>` ids are registered on import without building anything, and an env's
spec rebuilds it. (`gymnasium.make` of every task name is in test_all_tasks.py.)"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs import UnknownNameError, env_id, load_task_set, make_padded_env, task_names

MT80 = load_task_set("mt80")
# check_env always says these for a wrapper with unbounded observations (as Gymnasium MuJoCo's own envs have)
EXPECTED_WARNINGS = (
    "is different from the unwrapped version",
    "observation space minimum value is -infinity",
    "observation space maximum value is infinity",
)


@pytest.mark.parametrize(
    "task_set,task",
    [
        ("walker-walk", "walker-walk"),  # dm_control
        ("mw-pick-out-of-hole", "mw-pick-out-of-hole"),  # Meta-World
        ("gym-hopper", "gym-hopper"),  # Gymnasium MuJoCo
        ("mt80", "cartpole-swingup"),  # a set member, padded to the set's dims
    ],
)
def test_check_env_passes_on_make_padded_env(task_set, task):
    ts = MT80 if task_set == "mt80" else load_task_set(task_set)
    env = make_padded_env(ts, task, seed=5)
    assert env.observation_space.shape == (ts.max_obs_dim,) and env.action_space.shape == (ts.max_action_dim,)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)  # also rebuilds the env from env.spec for its close check
    unexpected = [str(w.message) for w in caught if not any(e in str(w.message) for e in EXPECTED_WARNINGS)]
    assert not unexpected
    assert env.spec.id == f"latentfleet/{task}" and env.render_mode is None and env.metadata["render_modes"] == []


def test_spec_rebuilds_the_same_padded_env():
    env = make_padded_env(MT80, "reacher-three-easy", seed=3)
    again = gym.make(env.spec)
    assert again.spec.kwargs == {"task": "reacher-three-easy", "seed": 3, "task_set": "mt80"}
    assert again.get_wrapper_attr("task_id") == env.task_id == MT80.index("reacher-three-easy")
    np.testing.assert_array_equal(again.reset(seed=8)[0], env.reset(seed=8)[0])
    action = np.random.default_rng(0).uniform(-1, 1, MT80.max_action_dim).astype(np.float32)
    np.testing.assert_array_equal(again.step(action)[0], env.step(action)[0])


def test_make_kwargs_pad_to_a_set_and_build_variants():
    env = gym.make(env_id("walker-walk"), seed=1, task_set="mt80")
    assert env.observation_space.shape == (MT80.max_obs_dim,) and env.get_wrapper_attr("task_id") == MT80.index(
        "walker-walk"
    )
    var = gym.make("latentfleet/walker-walk", variant="gear=0.5,mass=0.8")
    assert var.get_wrapper_attr("spec_").name == "walker-walk@mass=0.8,gear=0.5"
    np.testing.assert_allclose(
        var.unwrapped.mj_model.body_mass.sum(), 0.8 * env.unwrapped.mj_model.body_mass.sum(), rtol=1e-5
    )


def test_bad_make_arguments_say_what_is_wrong():
    with pytest.raises(gym.error.NameNotFound, match="walker-wlk"):
        gym.make("latentfleet/walker-wlk")
    with pytest.raises(ValueError, match="do not render"):
        gym.make("latentfleet/walker-walk", render_mode="rgb_array")
    with pytest.raises(UnknownNameError, match="unknown task in set 'mw-mt10'"):
        gym.make("latentfleet/walker-walk", task_set="mw-mt10")


def test_import_registers_every_task_and_builds_nothing():
    code = (
        "import sys, gymnasium, envs; "
        "ids = [i for i in gymnasium.registry if i.startswith('latentfleet/')]; "
        "heavy = sorted(m for m in ('mujoco', 'dm_control', 'metaworld', 'torch') if m in sys.modules); "
        "print(len(ids), heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(len(task_names())), "[]"]
    assert {env_id(t) for t in task_names()} <= set(gym.registry)


def test_rllib_and_gymnasium_ids_name_the_same_env():
    # RLlib resolves `latentfleet/<name>` in its own registry first; for one task both give the same env
    from distributed.baselines.env import LatentfleetEnv
    from distributed.baselines.env import env_id as rllib_env_id

    assert rllib_env_id("reacher-easy") == env_id("reacher-easy")
    theirs, ours = LatentfleetEnv({"task_set": "reacher-easy", "seed": 4}), gym.make(env_id("reacher-easy"), seed=4)
    assert theirs.observation_space == ours.observation_space and theirs.action_space == ours.action_space
    np.testing.assert_array_equal(theirs.reset(seed=4)[0], ours.reset(seed=4)[0])
