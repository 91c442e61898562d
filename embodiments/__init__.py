"""Embodiments: what a body is (read from its MuJoCo model), a fixed-size morphology descriptor,
the task -> body registry, procedural variants, and (from envs/task_set.py) train/held-out splits."""

from embodiments.descriptor import DESCRIPTOR_DIM, DESCRIPTOR_FEATURES, morphology_descriptor
from embodiments.registry import embodiment_names, load_embodiment, task_descriptors, task_embodiment, tasks_of
from envs.body import Actuator, Body, Embodiment, Joint, embodiment_from_model  # read where envs build bodies
from envs.task_set import Split, load_split, split_names  # splits are task-set data; named here too
from envs.variants import PARAMS as VARIANT_PARAMS  # variants are how envs build a body
from envs.variants import apply_variant, parse_variant

__all__ = [
    "DESCRIPTOR_DIM",
    "DESCRIPTOR_FEATURES",
    "VARIANT_PARAMS",
    "Actuator",
    "Body",
    "Embodiment",
    "Joint",
    "Split",
    "apply_variant",
    "embodiment_from_model",
    "embodiment_names",
    "load_embodiment",
    "load_split",
    "morphology_descriptor",
    "parse_variant",
    "split_names",
    "task_descriptors",
    "task_embodiment",
    "tasks_of",
]
