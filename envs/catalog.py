"""The task catalogue: every known task's simulator source and dims, read from `envs/data/tasks.json`.

Task names follow TD-MPC2 (`walker-walk`, `cup-catch`, `mw-assembly`) plus `gym-<env>` for
Gymnasium MuJoCo. A name may carry a procedural-variant suffix: `walker-walk@leg=1.2,mass=0.8`.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from envs.errors import UnknownNameError
from envs.spec import ActionConstraints, TaskSpec
from envs.variants import canonical_suffix

VARIANT_SEP = "@"


@functools.cache
def _tasks() -> dict[str, dict]:
    return json.loads(resources.files("envs").joinpath("data/tasks.json").read_text())["tasks"]


def task_names() -> tuple[str, ...]:
    """Every base task name in the catalogue, in catalogue order."""
    return tuple(_tasks())


def split_variant(task: str) -> tuple[str, str]:
    """`"walker-walk@leg=1.2"` -> `("walker-walk", "leg=1.2")`; no suffix gives `""`."""
    base, _, suffix = task.partition(VARIANT_SEP)
    return base.strip(), suffix.strip()


def task_entry(base: str) -> dict:
    """The catalogue row of a base task (no variant suffix); unknown names list the closest ones."""
    try:
        return _tasks()[base]
    except KeyError:
        raise UnknownNameError("task", base, _tasks()) from None


def task_spec(task: str) -> TaskSpec:
    """The TaskSpec of `task`. A variant keeps its base task's dims; its name and embodiment carry
    the canonical variant suffix (`walker@leg=1.2,mass=0.8`)."""
    base, suffix = split_variant(task)
    row = task_entry(base)
    name, embodiment = base, row["embodiment"]
    if suffix:
        suffix = canonical_suffix(suffix, domain=row["domain"], task=base)
        if suffix:
            name, embodiment = f"{base}@{suffix}", f"{embodiment}@{suffix}"
    return TaskSpec(
        name=name,
        domain=row["domain"],
        embodiment=embodiment,
        obs_dim=row["obs_dim"],
        action_dim=row["action_dim"],
        episode_length=row["episode_length"],
        action_repeat=row["action_repeat"],
        can_terminate=bool(row.get("can_terminate", False)),
        constraints=constraints_from_row(row.get("constraints"), f"task {base!r}", row["action_dim"]),
    )


def constraints_from_row(row: dict | None, owner: str, action_dim: int) -> ActionConstraints | None:
    """Checked ActionConstraints from a data row {"lo", "hi", "max_delta", "rest"} (None: none);
    errors name `owner` and the field."""
    if row is None:
        return None
    unknown = sorted(set(row) - set(ActionConstraints.__dataclass_fields__))
    if unknown:
        raise ValueError(f"{owner}: unknown constraint fields {unknown}; use lo, hi, max_delta, rest")
    c = ActionConstraints(
        **{k: None if v is None else tuple(v) if isinstance(v, (list, tuple)) else (v,) for k, v in row.items()}
    )
    c.resolved(owner, action_dim)  # refuse bad data where it is read
    return c
