"""Bad input fails at once and says what to do: closest names, the package to install."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import sys

import pytest

from envs import MissingPackageError, UnknownNameError, make_env


def test_unknown_task_lists_closest_names():
    with pytest.raises(UnknownNameError) as err:
        make_env("cheetah-run-backward")
    assert "cheetah-run-backwards" in str(err.value)
    with pytest.raises(UnknownNameError, match="mw-door-open"):
        make_env("mw-door-opn")


@pytest.mark.parametrize(
    "task,module,install",
    [
        ("mw-reach", "metaworld", "pip install metaworld"),
        ("walker-walk", "dm_control.suite", "pip install dm-control"),
        ("gym-ant", "mujoco", "gymnasium[mujoco]"),
    ],
)
def test_missing_simulator_package_names_what_to_install(monkeypatch, task, module, install):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(MissingPackageError, match=install.replace("[", r"\[").replace("]", r"\]")):
        make_env(task)


def test_errors_survive_pickling_across_processes():
    """Ray ships exceptions between processes by pickling them."""
    import pickle

    from envs.errors import MissingPackageError, UnknownNameError

    e = pickle.loads(pickle.dumps(UnknownNameError("task", "walker-wlak", ["walker-walk", "walker-run"])))
    assert isinstance(e, UnknownNameError) and "closest: walker-walk" in str(e)
    m = pickle.loads(pickle.dumps(MissingPackageError("mw-reach", "metaworld", "metaworld")))
    assert "pip install metaworld" in str(m)
