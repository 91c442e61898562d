"""Task sets as data (`envs/data/task_sets.json`): mt30, mt80, dmc-all, mw-mt10, mw-mt50, gym-all,
locomotion-mixed (Gymnasium bodies that fall, with dm_control ones that never terminate); and
train / held-out splits of tasks and bodies for transfer experiments (`envs/data/splits.json`),
whose training tasks are the task set `split:<name>`."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from envs.catalog import VARIANT_SEP, task_names, task_spec
from envs.errors import UnknownNameError
from envs.spec import TaskSpec


@functools.cache
def _task_sets() -> dict[str, list[str]]:
    return json.loads(resources.files("envs").joinpath("data/task_sets.json").read_text())["task_sets"]


def task_set_names() -> tuple[str, ...]:
    """The names of the predefined task sets."""
    return tuple(_task_sets())


@dataclass(frozen=True)
class TaskSet:
    """An ordered, immutable set of tasks; a task's id is its position. Dims are padded to the maxima."""

    name: str
    tasks: tuple[TaskSpec, ...]
    names: tuple[str, ...] = field(init=False)
    max_obs_dim: int = field(init=False)
    max_action_dim: int = field(init=False)

    def __post_init__(self):
        if not self.tasks:
            raise ValueError(f"task set {self.name!r} is empty")
        names = tuple(t.name for t in self.tasks)
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"task set {self.name!r} lists tasks more than once: {dup}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "max_obs_dim", max(t.obs_dim for t in self.tasks))
        object.__setattr__(self, "max_action_dim", max(t.action_dim for t in self.tasks))

    def __len__(self) -> int:
        return len(self.tasks)

    def index(self, task: str) -> int:
        """The task id of `task` in this set."""
        try:
            return self.names.index(task)
        except ValueError:
            raise UnknownNameError(f"task in set {self.name!r}:", task, self.names) from None

    def spec(self, task: str) -> TaskSpec:
        """The TaskSpec of a member task."""
        return self.tasks[self.index(task)]

    def action_masks(self) -> np.ndarray:
        """[T, max_action_dim] float32: 1 for a task's real action dims, 0 for padding."""
        masks = np.zeros((len(self), self.max_action_dim), np.float32)
        for i, t in enumerate(self.tasks):
            masks[i, : t.action_dim] = 1.0
        return masks

    def can_terminate(self) -> tuple[bool, ...]:
        """[T] per task: whether its episodes can end early (termination, not a time limit)."""
        return tuple(t.can_terminate for t in self.tasks)

    def episode_lengths(self) -> np.ndarray:
        """[T] int64 episode lengths in agent steps."""
        return np.array([t.episode_length for t in self.tasks], np.int64)


def _split_task_list(text: str) -> list[str]:
    """Split "a,b@leg=1.2,mass=0.8,c" into tasks; pieces with '=' but no '@' continue a variant suffix."""
    tasks: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if "=" in piece and VARIANT_SEP not in piece and tasks and VARIANT_SEP in tasks[-1]:
            tasks[-1] += "," + piece
        else:
            tasks.append(piece)
    return tasks


SPLIT_PREFIX = "split:"


def load_task_set(name_or_task: str) -> TaskSet:
    """A predefined set by name, or a single task (a set of one), or a comma-separated list of tasks,
    or `split:<name>`: the training tasks of a transfer split (`envs/data/splits.json`;
    its held-out tasks are left out, so they can never reach training data).

    Every listed task must exist: an unknown name raises with the closest set and task names.
    """
    if name_or_task.startswith(SPLIT_PREFIX):
        train = load_split(name_or_task[len(SPLIT_PREFIX) :]).train
        return TaskSet(name_or_task, tuple(task_spec(t) for t in train))
    sets = _task_sets()
    if name_or_task in sets:
        return TaskSet(name_or_task, tuple(task_spec(t) for t in sets[name_or_task]))
    tasks = _split_task_list(name_or_task)
    if not tasks:
        raise ValueError("load_task_set: empty task set name")
    base_names = set(task_names())
    for t in tasks:
        if t.partition(VARIANT_SEP)[0] not in base_names:
            raise UnknownNameError("task set or task", t, list(sets) + list(base_names))
    return TaskSet(name_or_task, tuple(task_spec(t) for t in tasks))


# -- splits -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """Held-out tasks must fit the training tasks' padded dims, so one model can be run on them."""

    name: str
    description: str
    train: tuple[str, ...]
    held_out: tuple[str, ...]

    def task_set(self) -> TaskSet:
        """One TaskSet of the training tasks (ids 0..len(train)-1) then the held-out ones."""
        return load_task_set(",".join(self.train + self.held_out))

    def train_set(self) -> TaskSet:
        """The training tasks alone."""
        return load_task_set(",".join(self.train))


@functools.cache
def _splits() -> dict[str, dict]:
    return json.loads(resources.files("envs").joinpath("data/splits.json").read_text())["splits"]


def split_names() -> tuple[str, ...]:
    """The names of the configured splits."""
    return tuple(_splits())


def load_split(name: str) -> Split:
    """A configured split; its tasks are validated (known names, valid variants, disjoint, dims fit)."""
    if name not in _splits():
        raise UnknownNameError("split", name, _splits())
    raw = _splits()[name]
    split = Split(
        name,
        raw["description"],
        tuple(task_spec(t).name for t in raw["train"]),
        tuple(task_spec(t).name for t in raw["held_out"]),
    )
    overlap = set(split.train) & set(split.held_out)
    if overlap:
        raise ValueError(f"split {name!r}: tasks both in train and held-out: {sorted(overlap)}")
    train = split.train_set()
    for t in split.held_out:
        spec = task_spec(t)
        if spec.obs_dim > train.max_obs_dim or spec.action_dim > train.max_action_dim:
            raise ValueError(
                f"split {name!r}: held-out {t!r} ({spec.obs_dim} obs, {spec.action_dim} actions) "
                f"exceeds the training dims ({train.max_obs_dim}, {train.max_action_dim})"
            )
    return split
