"""Every catalogued task as a Gymnasium env id: `gymnasium.make("latentfleet/walker-walk")`.

`register_tasks()` runs on `import envs` and only writes registry entries (no simulator is
imported or built); `gymnasium.make` builds the env through `envs.padded:make_task_env`, so
`gymnasium.make("latentfleet/<task>", seed=0, task_set=None, variant=None)` is
`make_padded_env(load_task_set(task_set or task), task, seed)`: a set of one when no set is
given (then its dims are the task's own). Procedural variants (`walker-walk@leg=1.2`) are not
valid Gymnasium ids: pass the suffix as `variant="leg=1.2"`.

The id names only the task. RLlib's registry (`distributed/baselines/env.py`) uses the same
`latentfleet/<name>` strings for tasks and task sets; RLlib looks in its own registry first.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

from envs.catalog import split_variant, task_names

NAMESPACE = "latentfleet"
ENTRY_POINT = "envs.padded:make_task_env"


def env_id(task: str) -> str:
    """`"walker-walk"` -> `"latentfleet/walker-walk"` (a base task name: ids cannot carry a variant)."""
    return f"{NAMESPACE}/{task}"


def task_env_spec(task: str, seed: int, task_set: Any) -> EnvSpec:
    """The EnvSpec that rebuilds `make_padded_env(task_set, task, seed)` through `gymnasium.make`
    (`task_set` as a set name, or the TaskSet itself when its name does not load back to it)."""
    base, variant = split_variant(task)
    kwargs = {"task": base, "seed": seed, "task_set": task_set}
    if variant:
        kwargs["variant"] = variant
    return EnvSpec(id=env_id(base), entry_point=ENTRY_POINT, kwargs=kwargs)


def register_tasks() -> None:
    """Register `latentfleet/<task>` for every catalogued task (idempotent; builds nothing)."""
    for name in task_names():
        if env_id(name) not in gym.registry:  # a second registration would warn "Overriding environment"
            gym.register(env_id(name), entry_point=ENTRY_POINT, kwargs={"task": name})
