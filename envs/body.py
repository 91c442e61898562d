"""What a body is, read from its compiled MuJoCo model: bodies, joints, actuators, masses, lengths.

It lives in envs because envs builds the models (procedural variants included) and describes tasks
in words from it (envs/describe.py); embodiments/ derives descriptors from it and re-exports it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import mujoco
import numpy as np

from envs.catalog import task_spec
from envs.make import make_env

_JOINT_TYPES = {
    int(mujoco.mjtJoint.mjJNT_FREE): "free",
    int(mujoco.mjtJoint.mjJNT_BALL): "ball",
    int(mujoco.mjtJoint.mjJNT_SLIDE): "slide",
    int(mujoco.mjtJoint.mjJNT_HINGE): "hinge",
}
_LONG_GEOMS = (int(mujoco.mjtGeom.mjGEOM_CAPSULE), int(mujoco.mjtGeom.mjGEOM_CYLINDER))


@dataclass(frozen=True)
class Body:
    name: str
    parent: str
    mass: float  # kg
    length: float  # m: farthest child-body offset, or for a leaf its longest geom extent
    depth: int  # edges from the world body


@dataclass(frozen=True)
class Joint:
    name: str
    type: str  # "hinge" | "slide" | "ball" | "free"
    body: str
    range: tuple[float, float] | None  # rad for hinges, m for slides; None if unlimited
    damping: float


@dataclass(frozen=True)
class Actuator:
    name: str
    target: str  # the joint (or tendon/site) it drives
    gear: float
    ctrl_range: tuple[float, float] | None  # None if unlimited


@dataclass(frozen=True)
class Embodiment:
    """A body as data. `obs_dim`/`action_dim` are those of the task it was read from."""

    name: str
    bodies: tuple[Body, ...]
    joints: tuple[Joint, ...]
    actuators: tuple[Actuator, ...]
    obs_dim: int
    action_dim: int

    @property
    def total_mass(self) -> float:
        return float(sum(b.mass for b in self.bodies))

    @property
    def limb_lengths(self) -> np.ndarray:
        """[n_bodies] float64 segment lengths (m)."""
        return np.array([b.length for b in self.bodies], np.float64)


def _name(model: mujoco.MjModel, obj: mujoco.mjtObj, i: int) -> str:
    return mujoco.mj_id2name(model, obj, i) or f"{obj.name.removeprefix('mjOBJ_').lower()}{i}"


def _body_length(model: mujoco.MjModel, b: int) -> float:
    children = [c for c in range(1, model.nbody) if model.body_parentid[c] == b and c != b]
    if children:
        return float(max(np.linalg.norm(model.body_pos[c]) for c in children))
    extents = [
        2 * model.geom_size[g, 1] if model.geom_type[g] in _LONG_GEOMS else 2 * model.geom_size[g].max()
        for g in range(model.ngeom)
        if model.geom_bodyid[g] == b
    ]
    return float(max(extents, default=0.0))


def _actuated_bodies(model: mujoco.MjModel) -> set[int]:
    bodies = set()
    for a in range(model.nu):
        trn, target = int(model.actuator_trntype[a]), int(model.actuator_trnid[a, 0])
        if trn in (int(mujoco.mjtTrn.mjTRN_JOINT), int(mujoco.mjtTrn.mjTRN_JOINTINPARENT)):
            bodies.add(int(model.jnt_bodyid[target]))
        elif trn == int(mujoco.mjtTrn.mjTRN_SITE):
            bodies.add(int(model.site_bodyid[target]))
        elif trn == int(mujoco.mjtTrn.mjTRN_TENDON):
            adr, num = model.tendon_adr[target], model.tendon_num[target]
            bodies.update(
                int(model.jnt_bodyid[model.wrap_objid[w]])
                for w in range(adr, adr + num)
                if model.wrap_type[w] == mujoco.mjtWrap.mjWRAP_JOINT
            )
    return bodies


def robot_body_ids(model: mujoco.MjModel) -> list[int]:
    """Bodies of the robot: on the path from the world to an actuated body, or below one.
    Free props (a ball, a peg, Meta-World's objects) are left out; all bodies if nothing is actuated."""
    actuated = _actuated_bodies(model)
    if not actuated:
        return list(range(1, model.nbody))
    keep = set()
    for b in actuated:
        while b > 0:  # ancestors
            keep.add(b)
            b = int(model.body_parentid[b])
    for b in range(1, model.nbody):  # descendants: parents come before children in MuJoCo's order
        if int(model.body_parentid[b]) in keep or b in actuated:
            keep.add(b)
    return sorted(keep)


def _pair(row) -> tuple[float, float]:
    """A (lo, hi) row of a model's range array as floats."""
    lo, hi = row
    return float(lo), float(hi)


@runtime_checkable
class _Simulated(Protocol):
    """An env that exposes the MuJoCo model it simulates (every env make_env builds does)."""

    @property
    def mj_model(self) -> mujoco.MjModel: ...


def embodiment_from_model(name: str, model: mujoco.MjModel, obs_dim: int, action_dim: int) -> Embodiment:
    """Read an Embodiment from a compiled model: the robot's bodies (see `robot_body_ids`), their
    joints, and every actuator."""
    depth = np.zeros(model.nbody, int)
    for b in range(1, model.nbody):
        depth[b] = depth[model.body_parentid[b]] + 1
    robot = robot_body_ids(model)
    bodies = tuple(
        Body(
            name=_name(model, mujoco.mjtObj.mjOBJ_BODY, b),
            parent=_name(model, mujoco.mjtObj.mjOBJ_BODY, int(model.body_parentid[b])),
            mass=float(model.body_mass[b]),
            length=_body_length(model, b),
            depth=int(depth[b]),
        )
        for b in robot
    )
    joints = tuple(
        Joint(
            name=_name(model, mujoco.mjtObj.mjOBJ_JOINT, j),
            type=_JOINT_TYPES[int(model.jnt_type[j])],
            body=_name(model, mujoco.mjtObj.mjOBJ_BODY, int(model.jnt_bodyid[j])),
            range=_pair(model.jnt_range[j]) if model.jnt_limited[j] else None,
            damping=float(model.dof_damping[model.jnt_dofadr[j]]),
        )
        for j in range(model.njnt)
        if int(model.jnt_bodyid[j]) in set(robot)
    )
    actuators = []
    for a in range(model.nu):
        trn = int(model.actuator_trntype[a])
        target_obj = {
            int(mujoco.mjtTrn.mjTRN_JOINT): mujoco.mjtObj.mjOBJ_JOINT,
            int(mujoco.mjtTrn.mjTRN_TENDON): mujoco.mjtObj.mjOBJ_TENDON,
        }.get(trn, mujoco.mjtObj.mjOBJ_SITE)
        actuators.append(
            Actuator(
                name=_name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, a),
                target=_name(model, target_obj, int(model.actuator_trnid[a, 0])),
                gear=float(model.actuator_gear[a, 0]),
                ctrl_range=_pair(model.actuator_ctrlrange[a]) if model.actuator_ctrllimited[a] else None,
            )
        )
    return Embodiment(
        name=name, bodies=bodies, joints=joints, actuators=tuple(actuators), obs_dim=obs_dim, action_dim=action_dim
    )


@functools.cache
def load_embodiment(task: str) -> Embodiment:
    """The Embodiment of `task` (a task name, possibly with a variant suffix), read from the
    compiled model of a freshly built env."""
    spec = task_spec(task)
    env = make_env(task, seed=0)
    try:
        if not isinstance(env, _Simulated):
            raise TypeError(f"{task}: its env ({type(env).__name__}) exposes no MuJoCo model (`mj_model`)")
        return embodiment_from_model(spec.embodiment, env.mj_model, spec.obs_dim, spec.action_dim)
    finally:
        env.close()
