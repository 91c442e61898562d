"""The multitask wrapper pads observations, drops padded action dims before the simulator, and
exposes the set's mask, task id and discount."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from envs import load_task_set, make_env, make_padded_env

MT80 = load_task_set("mt80")


@pytest.mark.parametrize("task", ["cartpole-swingup", "reacher-three-easy", "mw-reach"])
def test_padded_action_dims_never_reach_the_simulator(task):
    spec = MT80.spec(task)
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, (5, MT80.max_action_dim)).astype(np.float32)
    noisy_pad, zero_pad = make_padded_env(MT80, task, seed=4), make_padded_env(MT80, task, seed=4)
    plain = make_env(task, seed=4)
    first = [noisy_pad.reset(seed=4)[0], zero_pad.reset(seed=4)[0]]
    np.testing.assert_array_equal(first[0], first[1])
    np.testing.assert_array_equal(first[0][: spec.obs_dim], plain.reset(seed=4)[0])
    for a in actions:
        masked = a * noisy_pad.action_mask
        assert (a != masked).any() or spec.action_dim == MT80.max_action_dim
        o1, r1, *_ = noisy_pad.step(a)
        o2, r2, *_ = zero_pad.step(masked)
        o3, r3, *_ = plain.step(a[: spec.action_dim])
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(o1[: spec.obs_dim], o3)
        assert r1 == r2 == r3


def test_padding_layout_mask_and_task_id():
    env = make_padded_env(MT80, "cartpole-swingup", seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (MT80.max_obs_dim,) and obs.dtype == np.float32 and (obs[5:] == 0).all()
    assert env.task_id == MT80.index("cartpole-swingup") and env.spec_.obs_dim == 5
    np.testing.assert_array_equal(env.action_mask, MT80.action_masks()[env.task_id])
    assert env.action_space.shape == (MT80.max_action_dim,)
    with pytest.raises(ValueError, match="padded action shape"):
        env.step(np.zeros(1, np.float32))
