"""`make_env`: build any catalogued task, optionally as a procedural variant of its body."""

from __future__ import annotations

import gymnasium as gym

from envs.catalog import split_variant, task_entry, task_spec
from envs.variants import variant_editor


def make_env(task: str, seed: int = 0) -> gym.Env:
    """Build `task` (e.g. "walker-walk", "mw-assembly", "gym-ant", "walker-walk@leg=1.2,mass=0.8").

    The env gives float32 flat observations [obs_dim], takes actions in [-1, 1]^action_dim, applies
    the task's action repeat inside `step` (rewards summed), sets `truncated` at `episode_length`
    agent steps and always reports `info["success"]` (0.0 for tasks without a notion of success).
    Its `.spec_` is the TaskSpec.
    """
    spec = task_spec(task)
    base, suffix = split_variant(task)
    row = task_entry(base)
    edit = None
    if suffix:
        edit = variant_editor(suffix, domain=row["domain"], task=base)
    if row["domain"] == "dmc":
        from envs.dmc import DMControlEnv, load_dmc

        domain, task_name = row["source"].split("/")
        return DMControlEnv(load_dmc(base, domain, task_name, seed, xml_edit=edit), spec)
    if row["domain"] == "metaworld":
        from envs.metaworld_tasks import make_metaworld

        return make_metaworld(spec, row["source"], seed)
    if row["domain"] == "gym":
        from envs.gym_mujoco import make_gym_mujoco

        return make_gym_mujoco(spec, row["source"], seed, xml_edit=edit)
    raise ValueError(f"task {task!r}: catalogue domain {row['domain']!r} has no builder")
