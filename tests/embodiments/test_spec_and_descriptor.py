"""Embodiment specs read from MuJoCo models, and the fixed-size morphology descriptor."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

import embodiments.descriptor as descriptor_module
from embodiments import (
    DESCRIPTOR_DIM,
    DESCRIPTOR_FEATURES,
    embodiment_names,
    load_embodiment,
    morphology_descriptor,
    task_descriptors,
    task_embodiment,
    tasks_of,
)
from envs import UnknownNameError, load_task_set, make_env, task_names, task_spec


def test_walker_spec_matches_its_model():
    emb = load_embodiment("walker-walk")
    model = make_env("walker-walk").mj_model
    assert emb.name == "walker" and (emb.obs_dim, emb.action_dim) == (24, 6)
    assert [b.name for b in emb.bodies][:2] == ["torso", "right_thigh"]
    assert [j.type for j in emb.joints].count("slide") == 2 and [j.type for j in emb.joints].count("hinge") == 7
    hip = next(j for j in emb.joints if j.name == "right_hip")
    assert hip.range == pytest.approx((np.deg2rad(-20), np.deg2rad(100)), abs=1e-4)  # radians, not degrees
    assert [a.gear for a in emb.actuators] == list(model.actuator_gear[:, 0]) == [100, 50, 20, 100, 50, 20]
    assert all(a.ctrl_range == (-1.0, 1.0) for a in emb.actuators)
    assert {a.target for a in emb.actuators} >= {"right_hip", "left_ankle"}
    assert emb.total_mass == pytest.approx(model.body_mass.sum())
    thigh = next(b for b in emb.bodies if b.name == "right_thigh")
    assert thigh.length == pytest.approx(np.linalg.norm(model.body("right_leg").pos)) and thigh.depth == 2


def test_props_are_not_part_of_the_robot():
    reach, assembly = load_embodiment("mw-reach"), load_embodiment("mw-assembly")
    assert [b.name for b in reach.bodies] == [b.name for b in assembly.bodies]  # same Sawyer, other objects
    assert all(j.type != "free" for j in reach.joints)
    assert "ball" not in {b.name for b in load_embodiment("cup-catch").bodies}


@pytest.fixture(scope="module")
def one_task_per_embodiment():
    return {e: tasks_of(e)[0] for e in embodiment_names()}


def test_descriptor_is_fixed_size_finite_and_tells_bodies_apart(one_task_per_embodiment):
    vectors = {e: morphology_descriptor(load_embodiment(t)) for e, t in one_task_per_embodiment.items()}
    assert all(
        v.shape == (DESCRIPTOR_DIM,) and v.dtype == np.float32 and np.isfinite(v).all() for v in vectors.values()
    )
    rows = np.stack(list(vectors.values()))
    assert len(np.unique(rows.round(4), axis=0)) == len(rows)


def test_every_descriptor_feature_is_documented():
    assert len(DESCRIPTOR_FEATURES) == DESCRIPTOR_DIM
    doc = descriptor_module.__doc__
    assert all(f"| {name} |" in doc for name in DESCRIPTOR_FEATURES)


def test_registry_covers_every_task_and_task_descriptors_follow_ids():
    names = set(embodiment_names())
    assert all(task_embodiment(t) in names for t in task_names())
    assert {"walker-walk", "walker-run-backwards"} <= set(tasks_of("walker"))
    with pytest.raises(UnknownNameError, match="walker"):
        tasks_of("walkr")
    ts = load_task_set("mt30")
    desc = task_descriptors(ts)
    assert desc.shape == (30, DESCRIPTOR_DIM)
    np.testing.assert_array_equal(desc[ts.index("walker-walk")], desc[ts.index("walker-run-backwards")])
    assert not np.array_equal(desc[ts.index("walker-walk")], desc[ts.index("hopper-hop")])
    assert task_spec("reacher-three-easy").embodiment != task_spec("reacher-easy").embodiment
