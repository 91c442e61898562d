"""Which body each task uses, and the morphology descriptors of a task set's bodies (each body's
Embodiment is read by envs.body.load_embodiment, named here too)."""

from __future__ import annotations

import numpy as np

from embodiments.descriptor import DESCRIPTOR_DIM, morphology_descriptor
from envs import TaskSet, task_names, task_spec
from envs.body import load_embodiment  # noqa: F401  (named here too: a body's Embodiment is read where envs build it)
from envs.errors import UnknownNameError


def task_embodiment(task: str) -> str:
    """The embodiment name of `task` (a variant's carries its suffix: `walker@leg=1.2`)."""
    return task_spec(task).embodiment


def embodiment_names() -> tuple[str, ...]:
    """Every base embodiment of the catalogue, in first-appearance order."""
    return tuple(dict.fromkeys(task_spec(t).embodiment for t in task_names()))


def tasks_of(embodiment: str) -> tuple[str, ...]:
    """The catalogued tasks performed by base embodiment `embodiment`."""
    tasks = tuple(t for t in task_names() if task_spec(t).embodiment == embodiment)
    if not tasks:
        raise UnknownNameError("embodiment", embodiment, embodiment_names())
    return tasks


def task_descriptors(task_set: TaskSet) -> np.ndarray:
    """[T, DESCRIPTOR_DIM] float32: the morphology descriptor of each task of the set, by task id."""
    out = np.zeros((len(task_set), DESCRIPTOR_DIM), np.float32)
    for i, name in enumerate(task_set.names):
        out[i] = morphology_descriptor(load_embodiment(name))
    return out
