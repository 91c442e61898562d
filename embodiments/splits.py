"""Train / held-out splits of tasks and bodies for transfer experiments, as data
(`embodiments/data/splits.json`)."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

from envs import TaskSet, load_task_set, task_spec
from envs.errors import UnknownNameError


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
    return json.loads(resources.files("embodiments").joinpath("data/splits.json").read_text())["splits"]


def split_names() -> tuple[str, ...]:
    """The names of the configured splits."""
    return tuple(_splits())


def load_split(name: str) -> Split:
    """A configured split; its tasks are validated (known names, valid variants, disjoint, dims fit)."""
    if name not in _splits():
        raise UnknownNameError("split", name, _splits())
    raw = _splits()[name]
    split = Split(name, raw["description"], tuple(task_spec(t).name for t in raw["train"]),
                  tuple(task_spec(t).name for t in raw["held_out"]))
    overlap = set(split.train) & set(split.held_out)
    if overlap:
        raise ValueError(f"split {name!r}: tasks both in train and held-out: {sorted(overlap)}")
    train = split.train_set()
    for t in split.held_out:
        spec = task_spec(t)
        if spec.obs_dim > train.max_obs_dim or spec.action_dim > train.max_action_dim:
            raise ValueError(f"split {name!r}: held-out {t!r} ({spec.obs_dim} obs, {spec.action_dim} actions) "
                             f"exceeds the training dims ({train.max_obs_dim}, {train.max_action_dim})")
    return split
