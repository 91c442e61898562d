"""Task descriptors for descriptor-conditioned world models: what the model knows about a task
without ever having trained on it.

A task descriptor is the body's morphology descriptor (`embodiments.descriptor`, 24 features)
followed by an objective vector: a multi-hot over the words of the task's name after its body
prefix (`walker-run-backwards` -> {run, backwards}; `mw-pick-place` -> {pick, place}), from the
fixed word list in `embodiments/data/objectives.json`, plus one slot for words not listed.
A procedural variant (`cartpole-swingup@length=1.3`) keeps its objective and moves the
morphology part.

A language-conditioned model reads instead (or as well) the text embedding of the task's
description (`envs.describe.task_description`, embedded by `embodiments.text_encoder`).
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import numpy as np

from embodiments.descriptor import DESCRIPTOR_DIM, morphology_descriptor
from embodiments.registry import load_embodiment
from embodiments.text_encoder import embed_texts, encoder_name
from envs.catalog import split_variant
from envs.describe import task_description


@functools.cache
def objective_words() -> tuple[str, ...]:
    """The fixed objective vocabulary (order matters: it indexes trained descriptor maps)."""
    data = json.loads(resources.files("embodiments").joinpath("data/objectives.json").read_text())
    return tuple(data["words"])


OBJECTIVE_DIM = len(objective_words()) + 1  # + "other"
TASK_DESCRIPTOR_DIM = DESCRIPTOR_DIM + OBJECTIVE_DIM


def objective_of(task: str) -> tuple[str, ...]:
    """The objective words of a task name: the base name minus its first ('-'-separated) word."""
    base, _ = split_variant(task)
    rest = base.split("-", 1)[1] if "-" in base else base
    return tuple(w for w in rest.replace("_", "-").split("-") if w)


def objective_descriptor(task: str) -> np.ndarray:
    """[OBJECTIVE_DIM] float32 multi-hot of the task's objective words (last slot: unknown words)."""
    index = {w: i for i, w in enumerate(objective_words())}
    out = np.zeros(OBJECTIVE_DIM, np.float32)
    for word in objective_of(task):
        out[index.get(word, OBJECTIVE_DIM - 1)] = 1.0
    return out


def task_descriptor(task: str) -> np.ndarray:
    """[TASK_DESCRIPTOR_DIM] float32: morphology of the task's body, then its objective."""
    return np.concatenate([morphology_descriptor(load_embodiment(task)), objective_descriptor(task)])


def conditioning_descriptors(tasks) -> np.ndarray:
    """[T, TASK_DESCRIPTOR_DIM] for task names (or a TaskSet, by task id). Builds each body once."""
    names = list(getattr(tasks, "names", tasks))
    return np.stack([task_descriptor(t) for t in names]) if names else np.zeros((0, TASK_DESCRIPTOR_DIM), np.float32)


def task_language(tasks, device: str = "cpu", texts: dict[str, str] | None = None) -> np.ndarray:
    """[T, EMBEDDING_DIM] text embeddings of task names (or a TaskSet, by task id): each task's
    description, or the free text `texts[task]` where given."""
    names = list(getattr(tasks, "names", tasks))
    return embed_texts([(texts or {}).get(t) or task_description(t) for t in names], device)


def conditioning_kwargs(model_options: dict | None, task_set, device: str = "cpu") -> dict:
    """`make_agent_config` keyword arguments for a task set: what the model options' task_conditioning
    reads (descriptors, text embeddings and the encoder's name), nothing for a table (building bodies
    and loading the encoder cost seconds)."""
    from agents.config import conditioning_parts

    parts = conditioning_parts((model_options or {}).get("task_conditioning") or "table")
    out = {}
    if "descriptor" in parts:
        out["task_descriptors"] = conditioning_descriptors(task_set)
    if "language" in parts:
        out.update(task_language=task_language(task_set, device), language_encoder=encoder_name())
    return out


def nearest_tasks(reference: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For each query descriptor, the index of the nearest reference descriptor (Euclidean, after
    standardising every feature by the references' mean and std)."""
    from agents.config import descriptor_stats

    reference, queries = np.asarray(reference, np.float64), np.asarray(queries, np.float64)
    if len(reference) == 0:
        raise ValueError("nearest_tasks needs at least one reference task")
    mean, std = (np.asarray(x) for x in descriptor_stats(reference))
    r, q = (reference - mean) / std, (queries - mean) / std
    return ((q[:, None, :] - r[None, :, :]) ** 2).sum(-1).argmin(1)
