"""Procedural variants change the physics through the model spec, keep dims, and are named canonically."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from embodiments import load_embodiment, load_split, morphology_descriptor, split_names
from envs import UnknownNameError, load_task_set, make_env, task_spec


def rollout(task, steps=20, seed=0):
    env = make_env(task, seed=seed)
    obs = [env.reset(seed=seed)[0]]
    rng = np.random.default_rng(0)
    for _ in range(steps):
        obs.append(env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))[0])
    return env, np.stack(obs)


def test_scaled_mass_shows_in_the_model_and_changes_the_trajectory():
    base_env, base = rollout("walker-walk")
    light_env, light = rollout("walker-walk@mass=0.5")
    np.testing.assert_allclose(light_env.mj_model.body_mass, 0.5 * base_env.mj_model.body_mass, rtol=1e-6)
    assert light.shape == base.shape and task_spec("walker-walk@mass=0.5").obs_dim == 24
    np.testing.assert_allclose(light[0], base[0], atol=1e-4)  # same start (the MJCF round trip rounds ~1e-6)
    assert np.abs(light[-1] - base[-1]).max() > 0.05


def test_mass_scaling_survives_settotalmass():
    assert make_env("cheetah-run@mass=2").mj_model.body_mass.sum() == pytest.approx(
        2 * make_env("cheetah-run").mj_model.body_mass.sum()
    )


def test_leg_length_gear_and_damping_edit_the_right_parts():
    base, var = make_env("walker-walk").mj_model, make_env("walker-walk@leg=1.2,gear=0.5,damping=2").mj_model
    assert np.linalg.norm(var.body("right_leg").pos) == pytest.approx(1.2 * np.linalg.norm(base.body("right_leg").pos))
    np.testing.assert_allclose(var.body("right_thigh").pos, base.body("right_thigh").pos)  # hip stays on the torso
    np.testing.assert_allclose(var.actuator_gear[:, 0], 0.5 * base.actuator_gear[:, 0])
    np.testing.assert_allclose(var.dof_damping, 2 * base.dof_damping)


def test_variant_descriptor_differs_from_the_base_body():
    base = morphology_descriptor(load_embodiment("walker-walk"))
    for variant in ("walker-walk@leg=1.2", "walker-walk@mass=0.8", "walker-walk@gear=0.7"):
        assert not np.allclose(morphology_descriptor(load_embodiment(variant)), base), variant


def test_gymnasium_and_custom_bodies_have_variants_too():
    base_env, base = rollout("gym-hopper", steps=10)
    var_env, var = rollout("gym-hopper@leg=1.3,mass=1.5", steps=10)
    assert var_env.mj_model.body_mass.sum() > base_env.mj_model.body_mass.sum() and var.shape == base.shape
    assert not np.allclose(var[-1], base[-1])
    env, _ = rollout("reacher-three-easy@arm=1.25", steps=1)
    env.physics.data.qpos[:] = 0
    env.physics.forward()
    assert np.linalg.norm(env.physics.named.data.geom_xpos["finger", :2]) == pytest.approx(0.3)


def test_canonical_variant_names():
    assert task_spec("walker-walk@mass=0.8,leg=1.2").name == "walker-walk@leg=1.2,mass=0.8"
    assert task_spec("walker-walk@mass=0.8,leg=1.2").embodiment == "walker@leg=1.2,mass=0.8"
    assert task_spec("walker-walk@mass=1").name == "walker-walk"
    ts = load_task_set("walker-walk@leg=1.2,mass=0.8,cheetah-run,walker-walk")
    assert ts.names == ("walker-walk@leg=1.2,mass=0.8", "cheetah-run", "walker-walk")


@pytest.mark.parametrize(
    "task,error,match",
    [
        ("walker-walk@legg=1.2", UnknownNameError, "closest: leg"),
        ("walker-walk@mas=0.8", UnknownNameError, "mass"),
        ("walker-walk@mass=9", ValueError, r"outside \[0.25, 4.0\]"),
        ("walker-walk@mass", ValueError, "key=value"),
        ("walker-walk@mass=heavy", ValueError, "not a number"),
        ("mw-reach@mass=1.2", ValueError, "no procedural variants"),
    ],
)
def test_bad_variants_say_what_is_wrong(task, error, match):
    with pytest.raises(error, match=match):
        task_spec(task)


def test_a_part_the_body_lacks_is_an_error():
    with pytest.raises(ValueError, match="no arm bodies"):
        make_env("walker-walk@arm=1.2")


def test_splits_are_valid_and_held_out_bodies_are_new():
    for name in split_names():
        split = load_split(name)
        assert split.train and split.held_out and not set(split.train) & set(split.held_out)
        ts = split.task_set()
        assert ts.names == split.train + split.held_out
    walker = load_split("walker-morph")
    train = {tuple(morphology_descriptor(load_embodiment(t)).round(5)) for t in walker.train}
    assert all(tuple(morphology_descriptor(load_embodiment(t)).round(5)) not in train for t in walker.held_out)
    with pytest.raises(UnknownNameError, match="walker-morph"):
        load_split("walker-morf")
