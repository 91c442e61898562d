"""Which body each task uses, and reading that body's Embodiment from the simulator."""
from __future__ import annotations

import functools

import numpy as np

from embodiments.descriptor import DESCRIPTOR_DIM, morphology_descriptor
from embodiments.spec import Embodiment, embodiment_from_model
from envs import TaskSet, make_env, task_names, task_spec
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


@functools.cache
def load_embodiment(task: str) -> Embodiment:
    """The Embodiment of `task` (a task name, possibly with a variant suffix), read from the
    compiled model of a freshly built env."""
    spec = task_spec(task)
    env = make_env(task, seed=0)
    try:
        return embodiment_from_model(spec.embodiment, env.mj_model, spec.obs_dim, spec.action_dim)
    finally:
        env.close()


def task_descriptors(task_set: TaskSet) -> np.ndarray:
    """[T, DESCRIPTOR_DIM] float32: the morphology descriptor of each task of the set, by task id."""
    out = np.zeros((len(task_set), DESCRIPTOR_DIM), np.float32)
    for i, name in enumerate(task_set.names):
        out[i] = morphology_descriptor(load_embodiment(name))
    return out
