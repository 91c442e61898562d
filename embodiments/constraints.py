"""Action limits of a body and of a task, as data: bounds and rate limits (agents.config.ActionConstraints).

A task's limits are its own catalogue entry (`TaskSpec.constraints`) if it has one, else its base
embodiment's entry in `embodiments/data/constraints.json`; a procedural variant (`walker@leg=1.2`)
inherits its base body's. A run can override any field for all its tasks (`ConstraintOptions`, the
`constraints:` node of the run config); `run_constraints` gives the planner one entry per task.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from importlib import resources

from agents.config import ActionConstraints
from envs import task_spec
from envs.catalog import constraints_from_row, split_variant


@dataclass
class ConstraintOptions:
    """A run's action limits. `from_data`: use the tasks' and bodies' own limits (see the module
    docstring). lo/hi/max_delta/rest (None: keep the data's) replace that field for every task of
    the run: one value for every dim, or one per dim (then every task must have that many dims).
    Constraints are off unless some task ends with a bound or a rate limit."""

    from_data: bool = True  # use the tasks' and bodies' own action limits (embodiments/data/constraints.json)
    lo: list[float] | None = None  # lower action bound for every task of the run: one value, or one per dim
    hi: list[float] | None = None  # upper action bound for every task of the run: one value, or one per dim
    max_delta: list[float] | None = None  # largest step-to-step change of an action: one value, or one per dim
    rest: list[float] | None = None  # reference of an episode's first action (None: bounds only)


@functools.cache
def _table() -> dict[str, dict]:
    return json.loads(resources.files("embodiments").joinpath("data/constraints.json").read_text())["embodiments"]


def embodiment_constraints(embodiment: str, table: dict[str, dict] | None = None) -> ActionConstraints | None:
    """The limits of base body `embodiment` (a variant name `walker@leg=1.2` gives its base's), from
    `table` (default: embodiments/data/constraints.json); None if it has none. Unchecked dims: see
    `task_constraints`."""
    base, _ = split_variant(embodiment)
    row = (_table() if table is None else table).get(base)
    if row is None:
        return None
    return ActionConstraints(
        **{k: None if v is None else tuple(v) if isinstance(v, (list, tuple)) else (v,) for k, v in row.items()}
    )


def task_constraints(task: str, table: dict[str, dict] | None = None) -> ActionConstraints | None:
    """The limits of `task` (variant suffixes allowed), checked against its action dim: its own
    catalogue entry, else its base embodiment's (from `table`, default the data file), else None."""
    spec = task_spec(task)
    if spec.constraints is not None:
        return spec.constraints
    base = split_variant(spec.embodiment)[0]
    row = (_table() if table is None else table).get(base)
    return constraints_from_row(row, f"task {spec.name!r} (embodiment {base!r})", spec.action_dim)


def run_constraints(
    task_set, options: ConstraintOptions | None = None, table: dict[str, dict] | None = None
) -> tuple[ActionConstraints | None, ...] | None:
    """One resolved ActionConstraints (or None) per task of `task_set`, by task id; None if no task
    is constrained (the planner then runs exactly as without constraints). Bad values raise a
    ValueError naming the task and the field."""
    options = options or ConstraintOptions()
    override = {
        f.name: tuple(getattr(options, f.name))
        for f in dataclasses.fields(ActionConstraints)
        if getattr(options, f.name) is not None
    }
    out = []
    for spec in task_set.tasks:
        c = task_constraints(spec.name, table) if options.from_data else None
        if override:
            c = dataclasses.replace(c or ActionConstraints(), **override)
        out.append(c.resolved(f"task {spec.name!r}", spec.action_dim) if c is not None and c.active else None)
    return None if all(c is None for c in out) else tuple(out)
