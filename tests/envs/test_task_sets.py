"""Task sets as data: TD-MPC2's mt30/mt80 exactly, padded dims, masks, discounts, bad names."""

import numpy as np
import pytest

from agents.config import discount_from_episode_length
from envs import UnknownNameError, load_task_set, task_spec

MT30_STANDARD = [
    "walker-stand",
    "walker-walk",
    "walker-run",
    "cheetah-run",
    "reacher-easy",
    "reacher-hard",
    "acrobot-swingup",
    "pendulum-swingup",
    "cartpole-balance",
    "cartpole-balance-sparse",
    "cartpole-swingup",
    "cartpole-swingup-sparse",
    "cup-catch",
    "finger-spin",
    "finger-turn-easy",
    "finger-turn-hard",
    "fish-swim",
    "hopper-stand",
    "hopper-hop",
]
MT30_CUSTOM = [
    "walker-walk-backwards",
    "walker-run-backwards",
    "cheetah-run-backwards",
    "cheetah-run-front",
    "cheetah-run-back",
    "cheetah-jump",
    "hopper-hop-backwards",
    "reacher-three-easy",
    "reacher-three-hard",
    "cup-spin",
    "pendulum-spin",
]


def test_mt30_and_mt80_are_tdmpc2s_lists_in_order():
    mt30, mt80, mt50 = load_task_set("mt30"), load_task_set("mt80"), load_task_set("mw-mt50")
    assert list(mt30.names) == MT30_STANDARD + MT30_CUSTOM
    assert mt80.names == mt30.names + mt50.names and len(mt80) == 80
    assert all(n.startswith("mw-") for n in mt50.names) and "mw-assembly" in mt50.names
    assert set(load_task_set("mw-mt10").names) < set(mt50.names) and len(load_task_set("mw-mt10")) == 10
    assert len(load_task_set("dmc-all")) == 51 + 11 and len(load_task_set("gym-all")) == 10


def test_mt80_dims_masks_and_discounts():
    ts = load_task_set("mt80")
    assert (ts.max_obs_dim, ts.max_action_dim) == (39, 6)  # Meta-World obs, walker/cheetah actions
    masks = ts.action_masks()
    assert masks.shape == (80, 6) and masks.dtype == np.float32
    i = ts.index("cartpole-swingup")
    np.testing.assert_array_equal(masks[i], [1, 0, 0, 0, 0, 0])
    assert masks[ts.index("mw-reach")].sum() == 4 and masks[ts.index("walker-walk")].sum() == 6
    disc = [discount_from_episode_length(L) for L in ts.episode_lengths()]
    assert disc[ts.index("walker-walk")] == pytest.approx(0.99) and disc[ts.index("mw-reach")] == pytest.approx(0.95)
    assert ts.spec("mw-reach").episode_length == 100 and ts.spec("walker-walk").episode_length == 500


def test_discount_heuristic():
    assert discount_from_episode_length(500) == pytest.approx(0.99)
    assert discount_from_episode_length(100) == pytest.approx(0.95)  # (20-1)/20
    assert discount_from_episode_length(10) == pytest.approx(0.95)  # clipped below
    assert discount_from_episode_length(100_000) == pytest.approx(0.995)  # clipped above
    with pytest.raises(ValueError):
        discount_from_episode_length(0)


def test_single_task_and_comma_list_sets():
    one = load_task_set("walker-walk")
    assert one.names == ("walker-walk",) and one.max_obs_dim == 24 and one.index("walker-walk") == 0
    two = load_task_set("cartpole-swingup, mw-reach")
    assert two.names == ("cartpole-swingup", "mw-reach") and (two.max_obs_dim, two.max_action_dim) == (39, 4)


def test_unknown_names_list_the_closest():
    with pytest.raises(UnknownNameError, match="walker-walk"):
        task_spec("walker-wlak")
    with pytest.raises(UnknownNameError, match="mt80"):
        load_task_set("mt08")
    with pytest.raises(UnknownNameError, match="mw-assembly"):
        load_task_set("walker-walk,mw-asembly")
    with pytest.raises(UnknownNameError, match="walker-walk"):
        load_task_set("mt30").index("walker-wakl")


def test_duplicate_tasks_are_rejected():
    with pytest.raises(ValueError, match="more than once"):
        load_task_set("walker-walk,walker-walk")
