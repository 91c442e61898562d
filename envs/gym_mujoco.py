"""Gymnasium MuJoCo tasks (`gym-ant`, ...), without Gymnasium's own TimeLimit (ours applies)."""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path

from envs.errors import MissingPackageError
from envs.gym_backed import RepeatedActionEnv
from envs.spec import TaskSpec


def base_xml_path(env_id: str) -> Path:
    """The MJCF file Gymnasium ships for `env_id` (e.g. "Ant-v5"), found without building the env."""
    import inspect

    import gymnasium
    from gymnasium.envs.mujoco.mujoco_env import expand_model_path
    from gymnasium.envs.registration import load_env_creator

    spec = gymnasium.spec(env_id)
    xml_file = spec.kwargs.get("xml_file")
    if not xml_file:
        if not isinstance(spec.entry_point, str):
            raise ValueError(f"{env_id}: Gymnasium registers it with entry point {spec.entry_point!r}, not a string")
        xml_file = inspect.signature(load_env_creator(spec.entry_point)).parameters["xml_file"].default
    return Path(expand_model_path(xml_file))


def make_gym_mujoco(spec: TaskSpec, source: str, seed: int, xml_edit=None) -> RepeatedActionEnv:
    """Build Gymnasium env `source` (e.g. "Ant-v5"). Termination (e.g. a fallen Ant) passes through.

    `xml_edit`, if given, edits the model's `mujoco.MjSpec` in place (procedural variants). A model
    whose MJCF sets the deprecated `settotalmass` (HalfCheetah) is compiled without it and rescaled
    after (envs/total_mass.py), to the same masses.
    """
    try:
        importlib.import_module("mujoco")
        gymnasium = importlib.import_module("gymnasium")
    except ImportError as err:
        raise MissingPackageError(spec.name, "gymnasium[mujoco]", "'gymnasium[mujoco]'") from err
    import mujoco

    from envs.total_mass import pop_total_mass, set_total_mass, split_total_mass

    path = base_xml_path(source)
    if xml_edit is None:
        xml, total_mass = split_total_mass(path.read_text())
        if not total_mass:
            return RepeatedActionEnv(gymnasium.make(source).unwrapped, spec, seed, success_key=None)
    else:
        model_spec = mujoco.MjSpec.from_file(str(path))
        xml_edit(model_spec)
        total_mass = pop_total_mass(model_spec)  # before to_xml, which compiles
        xml = model_spec.to_xml()
    with tempfile.TemporaryDirectory() as tmp:  # Gymnasium loads models from a path only
        edited = Path(tmp) / path.name
        edited.write_text(xml)
        sim = gymnasium.make(source, xml_file=str(edited)).unwrapped
    set_total_mass(sim.model, total_mass)
    return RepeatedActionEnv(sim, spec, seed, success_key=None)
