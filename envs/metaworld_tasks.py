"""Meta-World v3 tasks (`mw-<name>`), goal-observable, a new goal and object placement each reset."""

from __future__ import annotations

import importlib

from envs.errors import MissingPackageError
from envs.gym_backed import RepeatedActionEnv
from envs.spec import TaskSpec


def make_metaworld(spec: TaskSpec, source: str, seed: int) -> RepeatedActionEnv:
    """Build Meta-World env `source` (e.g. "assembly-v3"); `info["success"]` is 1.0 once the
    task's success criterion holds on any simulator step of the agent step."""
    try:
        metaworld = importlib.import_module("metaworld")
    except ImportError as err:
        raise MissingPackageError(spec.name, "metaworld", "metaworld") from err
    sim = metaworld.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{source}-goal-observable"](seed=seed)
    sim._freeze_rand_vec = False  # as in TD-MPC2: resample goal/object positions every reset
    sim.seeded_rand_vec = True  # draw them from the env's seeded generator, not numpy's global one
    # Meta-World's reset ignores its seed argument; its own seed() reseeds the generator
    return RepeatedActionEnv(sim, spec, seed, success_key="success", reseed=lambda s, value: s.seed(value))
