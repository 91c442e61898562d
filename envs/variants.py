"""Procedural variants of a body, built by editing its MuJoCo model spec (`mujoco.MjSpec`).

A variant is a task name with a suffix of scale factors: `walker-walk@leg=1.2,mass=0.8`.
Parameters (each a multiplicative factor in [0.25, 4]):

- `length`  every body's segment: child-body offsets, capsule/cylinder lengths, geom, site and joint positions
- `leg`     the same, for leg bodies only (names with thigh, leg, shin, calf, foot, ankle, toe, hip)
- `arm`     the same, for arm bodies only (names with arm, hand, finger, digit, elbow, wrist, shoulder)
- `mass`    every body's mass (geom masses or densities, explicit body inertials, `settotalmass`)
- `gear`    every actuator's gear (strength)
- `damping` every joint's damping

Variants keep the joint and actuator structure, so a variant has its base task's dims.
`describe_variant` says in words how a variant differs from its base body ("legs 20% longer").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from envs.errors import UnknownNameError

if TYPE_CHECKING:  # mujoco is imported where a model is edited: `import envs` and parsing a name stay cheap
    import mujoco

PARAMS = ("length", "leg", "arm", "mass", "gear", "damping")
SCALE_RANGE = (0.25, 4.0)
_PART_PATTERNS = {
    "leg": re.compile(r"thigh|leg|shin|calf|foot|ankle|toe|hip", re.IGNORECASE),
    "arm": re.compile(r"arm|hand|finger|digit|elbow|wrist|shoulder", re.IGNORECASE),
}
_EDITABLE_DOMAINS = ("dmc", "gym")  # Meta-World's Sawyer is assembled from many include files


def parse_variant(suffix: str) -> dict[str, float]:
    """`"leg=1.2,mass=0.8"` -> `{"leg": 1.2, "mass": 0.8}`; bad keys, values or ranges raise."""
    params: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in suffix.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise ValueError(f"variant item {item!r} is not key=value (e.g. 'mass=0.8')")
        if key not in PARAMS:
            raise UnknownNameError("variant parameter", key, PARAMS)
        if key in params:
            raise ValueError(f"variant parameter {key!r} given twice in {suffix!r}")
        try:
            factor = float(value)
        except ValueError:
            raise ValueError(f"variant parameter {key}={value!r} is not a number") from None
        if not SCALE_RANGE[0] <= factor <= SCALE_RANGE[1]:
            raise ValueError(f"variant parameter {key}={factor:g} is outside {list(SCALE_RANGE)}")
        params[key] = factor
    return params


# what each factor changes, its adjective, and its words for a factor above / below 1
_VARIANT_WORDS = {
    "length": ("every segment", "long", "longer", "shorter"),
    "leg": ("legs", "long", "longer", "shorter"),
    "arm": ("arms", "long", "longer", "shorter"),
    "mass": ("", "heavy", "heavier", "lighter"),
    "gear": ("actuators", "strong", "stronger", "weaker"),
    "damping": ("joint damping", "high", "higher", "lower"),
}


def describe_variant(suffix: str) -> str:
    """How a variant differs from its base body, in words: `"leg=1.2,mass=0.8"` -> `"legs 20% longer,
    20% lighter"` (factors of 1 say nothing; "" when none differs). Factors from 2 up and to 0.5
    down read "2x as long": a doubling is clearer so than "100% longer"."""
    phrases = []
    for key, k in parse_variant(suffix).items():
        if k == 1.0:
            continue
        what, adjective, up, down = _VARIANT_WORDS[key]
        change = (
            f"{k:g}x as {adjective}" if k >= 2.0 or k <= 0.5 else f"{abs(k - 1) * 100:.3g}% {up if k > 1 else down}"
        )
        phrases.append(f"{what} {change}".strip())
    return ", ".join(phrases)


def _check_domain(domain: str, task: str) -> None:
    if domain not in _EDITABLE_DOMAINS:
        raise ValueError(
            f"task {task!r} ({domain}) has no procedural variants; they exist for domains {list(_EDITABLE_DOMAINS)}"
        )


def canonical_suffix(suffix: str, domain: str, task: str) -> str:
    """The suffix with parameters in a fixed order and factors of exactly 1 dropped ("" if none remain)."""
    _check_domain(domain, task)
    params = parse_variant(suffix)
    return ",".join(f"{k}={params[k]:g}" for k in PARAMS if k in params and params[k] != 1.0)


def variant_editor(suffix: str, domain: str, task: str) -> Callable[[mujoco.MjSpec], None]:
    """A function that applies the variant `suffix` to a task's `mujoco.MjSpec` in place."""
    _check_domain(domain, task)
    params = parse_variant(suffix)
    return lambda spec: apply_variant(spec, params)


def _scale_segment(body: mujoco.MjsBody, k: float) -> None:
    """Stretch one body's segment by k along its own frame; radii stay as they are."""
    import mujoco

    for geom in body.geoms:
        if not np.isnan(geom.fromto[0]):
            geom.fromto = np.asarray(geom.fromto) * k
        else:
            geom.pos = np.asarray(geom.pos) * k
            if geom.type in (mujoco.mjtGeom.mjGEOM_CAPSULE, mujoco.mjtGeom.mjGEOM_CYLINDER):
                geom.size = np.asarray(geom.size) * [1.0, k, 1.0]
    for site in body.sites:
        site.pos = np.asarray(site.pos) * k
    for joint in body.joints:
        joint.pos = np.asarray(joint.pos) * k
    for child in body.bodies:
        child.pos = np.asarray(child.pos) * k


def _robot_bodies(spec: mujoco.MjSpec) -> list[mujoco.MjsBody]:
    return [b for b in spec.bodies if b.name != "world"]


def apply_variant(spec: mujoco.MjSpec, params: dict[str, float]) -> None:
    """Edit `spec` in place by the factors in `params` (see the module docstring)."""
    for key in ("length", "leg", "arm"):
        if key not in params:
            continue
        bodies = _robot_bodies(spec)
        if key in _PART_PATTERNS:
            bodies = [b for b in bodies if _PART_PATTERNS[key].search(b.name)]
            if not bodies:
                raise ValueError(
                    f"variant {key}={params[key]:g}: model {spec.modelname!r} has no {key} bodies "
                    f"(body names: {[b.name for b in _robot_bodies(spec)]})"
                )
        for body in bodies:
            _scale_segment(body, params[key])
    if "mass" in params:
        k = params["mass"]
        for geom in spec.geoms:
            if np.isnan(geom.mass):
                geom.density *= k
            else:
                geom.mass *= k
        for body in _robot_bodies(spec):
            if body.explicitinertial:
                body.mass *= k
                body.inertia = np.asarray(body.inertia) * k
        if spec.compiler.settotalmass > 0:  # otherwise the compiler would rescale back to the old total
            spec.compiler.settotalmass *= k
    if "gear" in params:
        for actuator in spec.actuators:
            actuator.gear = np.asarray(actuator.gear) * params["gear"]
    if "damping" in params:
        for joint in spec.joints:
            joint.damping = np.asarray(joint.damping) * params["damping"]
