"""A fixed-size morphology descriptor: one float32 vector per body, the same length for every
body, that a model can condition on. Features are scale-aware (logs of masses, lengths, gears)
so that a procedural variant moves the vector in a readable direction.

| index | feature | definition |
|---|---|---|
| 0 | n_bodies | log(1 + number of bodies, world excluded) |
| 1 | n_hinge | log(1 + number of hinge joints) |
| 2 | n_slide | log(1 + number of slide joints) |
| 3 | n_ball | log(1 + number of ball joints) |
| 4 | n_free | log(1 + number of free joints) |
| 5 | n_actuators | log(1 + number of actuators) |
| 6 | total_mass | log(total mass in kg) |
| 7 | mass_spread | std / mean of body masses |
| 8 | tree_depth | deepest body's depth in the kinematic tree |
| 9 | mean_limb | log(mean segment length in m) |
| 10 | max_limb | log(longest segment length in m) |
| 11 | total_limb | log(sum of segment lengths in m) |
| 12 | leg_limb | log(mean length of leg segments), 0 if none |
| 13 | arm_limb | log(mean length of arm segments), 0 if none |
| 14 | mean_gear | log(mean absolute actuator gear) |
| 15 | max_gear | log(max absolute actuator gear) |
| 16 | mean_ctrl_width | mean width of actuator control ranges (unlimited counted as 0) |
| 17 | limited_frac | fraction of joints with a range |
| 18 | mean_hinge_range | mean width (rad) of limited hinge ranges, 0 if none |
| 19 | mean_damping | log(1 + mean joint damping) |
| 20 | torque_per_mass | log(sum of abs gear x ctrl half-width / total mass) |
| 21 | obs_dim | log(1 + observation dim of the task) |
| 22 | action_dim | log(1 + action dim) |
| 23 | actuated_frac | actuators / non-free joints (1 when fully actuated) |
"""

from __future__ import annotations

import re

import numpy as np

from envs.body import Embodiment

DESCRIPTOR_FEATURES = (
    "n_bodies",
    "n_hinge",
    "n_slide",
    "n_ball",
    "n_free",
    "n_actuators",
    "total_mass",
    "mass_spread",
    "tree_depth",
    "mean_limb",
    "max_limb",
    "total_limb",
    "leg_limb",
    "arm_limb",
    "mean_gear",
    "max_gear",
    "mean_ctrl_width",
    "limited_frac",
    "mean_hinge_range",
    "mean_damping",
    "torque_per_mass",
    "obs_dim",
    "action_dim",
    "actuated_frac",
)
DESCRIPTOR_DIM = len(DESCRIPTOR_FEATURES)
_EPS = 1e-6
_LEG = re.compile(r"thigh|leg|shin|calf|foot|ankle|toe|hip", re.IGNORECASE)
_ARM = re.compile(r"arm|hand|finger|digit|elbow|wrist|shoulder", re.IGNORECASE)


def _log(x: float) -> float:
    return float(np.log(max(x, _EPS)))


def _mean_log_length(emb: Embodiment, pattern: re.Pattern) -> float:
    lengths = [b.length for b in emb.bodies if pattern.search(b.name)]
    return _log(float(np.mean(lengths))) if lengths else 0.0


def morphology_descriptor(emb: Embodiment) -> np.ndarray:
    """[DESCRIPTOR_DIM] float32 vector describing `emb`; feature i is DESCRIPTOR_FEATURES[i]."""
    masses = np.array([b.mass for b in emb.bodies]) if emb.bodies else np.zeros(1)
    lengths = emb.limb_lengths if emb.bodies else np.zeros(1)
    types = [j.type for j in emb.joints]
    gears = np.abs([a.gear for a in emb.actuators]) if emb.actuators else np.zeros(1)
    widths = [a.ctrl_range[1] - a.ctrl_range[0] if a.ctrl_range else 0.0 for a in emb.actuators] or [0.0]
    torque = sum(
        abs(a.gear) * ((a.ctrl_range[1] - a.ctrl_range[0]) / 2 if a.ctrl_range else 1.0) for a in emb.actuators
    )
    hinge_widths = [j.range[1] - j.range[0] for j in emb.joints if j.type == "hinge" and j.range]
    movable = sum(t != "free" for t in types)
    features = [
        np.log1p(len(emb.bodies)),
        *(np.log1p(types.count(t)) for t in ("hinge", "slide", "ball", "free")),
        np.log1p(len(emb.actuators)),
        _log(emb.total_mass),
        float(masses.std() / max(masses.mean(), _EPS)),
        float(max((b.depth for b in emb.bodies), default=0)),
        _log(float(lengths.mean())),
        _log(float(lengths.max())),
        _log(float(lengths.sum())),
        _mean_log_length(emb, _LEG),
        _mean_log_length(emb, _ARM),
        _log(float(gears.mean())),
        _log(float(gears.max())),
        float(np.mean(widths)),
        sum(j.range is not None for j in emb.joints) / max(len(emb.joints), 1),
        float(np.mean(hinge_widths)) if hinge_widths else 0.0,
        float(np.log1p(np.mean([j.damping for j in emb.joints]))) if emb.joints else 0.0,
        _log(torque / max(emb.total_mass, _EPS)),
        np.log1p(emb.obs_dim),
        np.log1p(emb.action_dim),
        len(emb.actuators) / max(movable, 1),
    ]
    return np.asarray(features, np.float32)
