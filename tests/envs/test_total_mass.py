"""The cheetahs' `settotalmass` is applied after compiling: the same model arrays as the compiler's
deprecated attribute gives, and no deprecation warning on any channel when the env is built."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import logging
import warnings

import mujoco
import numpy as np
import pytest

from envs import make_env
from envs.total_mass import split_total_mass


def _arrays(model: mujoco.MjModel) -> dict[str, np.ndarray]:
    out = {}
    for name in dir(model):
        if not name.startswith("_"):
            try:
                value = getattr(model, name)
            except Exception:  # noqa: BLE001 - some properties need a render context
                continue
            if isinstance(value, np.ndarray):
                out[name] = value
    return out


def _reference(task: str) -> mujoco.MjModel:
    """The model compiled from the shipped MJCF, `settotalmass` and all (this warns)."""
    if task.startswith("gym-"):
        from envs.gym_mujoco import base_xml_path

        return mujoco.MjModel.from_xml_path(str(base_xml_path("HalfCheetah-v5")))
    from dm_control.suite import cheetah

    return mujoco.MjModel.from_xml_string(*cheetah.get_model_and_assets())


@pytest.mark.parametrize("task", ["cheetah-run", "cheetah-jump", "gym-halfcheetah"])
def test_model_equals_the_settotalmass_compile(task):
    ours, ref = _arrays(make_env(task).mj_model), _arrays(_reference(task))
    assert ours.keys() == ref.keys() and len(ours) > 100
    differ = [k for k in ours if not np.array_equal(ours[k], ref[k], equal_nan=True)]
    assert not differ
    assert ours["body_mass"].sum() == pytest.approx(14.0)


@pytest.mark.parametrize(
    "task", ["cheetah-run", "cheetah-run-backwards@mass=2", "gym-halfcheetah", "gym-halfcheetah@mass=2"]
)
def test_building_a_cheetah_prints_no_deprecation(task, caplog, capfd):
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        env = make_env(task)
        env.reset(seed=0)
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records] + list(capfd.readouterr())
    assert not [s for s in said if "settotalmass" in s]
    expected = 28.0 if "mass=2" in task else 14.0
    assert env.mj_model.body_mass.sum() == pytest.approx(expected)


def test_split_total_mass_reads_and_removes_the_attribute():
    xml, total = split_total_mass(b'<mujoco><compiler angle="radian" settotalmass="14"/><worldbody/></mujoco>')
    assert total == 14.0 and "settotalmass" not in xml and 'angle="radian"' in xml
    assert split_total_mass("<mujoco><worldbody/></mujoco>") == ("<mujoco><worldbody/></mujoco>", 0.0)
