"""Gymnasium MuJoCo tasks (`gym-ant`, ...), without Gymnasium's own TimeLimit (ours applies)."""
from __future__ import annotations

import importlib
import tempfile
from pathlib import Path

from envs.errors import MissingPackageError
from envs.gym_backed import RepeatedActionEnv
from envs.spec import TaskSpec


def base_xml_path(env_id: str) -> Path:
    """The MJCF file Gymnasium ships for `env_id` (e.g. "Ant-v5")."""
    import gymnasium

    sim = gymnasium.make(env_id).unwrapped
    path = Path(sim.fullpath)
    sim.close()
    return path


def make_gym_mujoco(spec: TaskSpec, source: str, seed: int, xml_edit=None) -> RepeatedActionEnv:
    """Build Gymnasium env `source` (e.g. "Ant-v5"). Termination (e.g. a fallen Ant) passes through.

    `xml_edit`, if given, edits the model's `mujoco.MjSpec` in place (procedural variants).
    """
    try:
        importlib.import_module("mujoco")
        gymnasium = importlib.import_module("gymnasium")
    except ImportError as err:
        raise MissingPackageError(spec.name, "gymnasium[mujoco]", "'gymnasium[mujoco]'") from err
    if xml_edit is None:
        return RepeatedActionEnv(gymnasium.make(source).unwrapped, spec, seed, success_key=None)
    import mujoco

    model_spec = mujoco.MjSpec.from_file(str(base_xml_path(source)))
    xml_edit(model_spec)
    with tempfile.TemporaryDirectory() as tmp:  # Gymnasium loads models from a path only
        path = Path(tmp) / "variant.xml"
        path.write_text(model_spec.to_xml())
        sim = gymnasium.make(source, xml_file=str(path)).unwrapped
    return RepeatedActionEnv(sim, spec, seed, success_key=None)
