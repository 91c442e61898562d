"""Three-link planar reacher: the suite's two-link arm rebuilt with three hinged links of the
same total reach, edited with MuJoCo's model-editing API; the suite's Reacher task on top."""

import functools

import mujoco
from dm_control.rl import control
from dm_control.suite import reacher

_LINK = 0.08  # three links of 8 cm reach as far as the suite's 12 + 12 cm arm
_CAPSULE = 0.07  # each link's capsule is a bit shorter than the link, like the suite's hand
_BIG_TARGET, _SMALL_TARGET = 0.05, 0.015


@functools.cache
def three_link_xml() -> str:
    """MJCF of the three-link arm: arm -> hand -> digit (new) -> finger, one motor per joint."""
    spec = mujoco.MjSpec.from_string(*reacher.get_model_and_assets())
    spec.modelname = "three-link planar reacher"
    hand = spec.body("hand")
    spec.geom("arm").fromto = [0, 0, 0, _LINK, 0, 0]
    hand.pos = [_LINK, 0, 0]
    spec.geom("hand").fromto = [0, 0, 0, _LINK, 0, 0]
    spec.delete(spec.body("finger"))  # it moves to the end of the new third link
    digit = hand.add_body(name="digit", pos=[_LINK, 0, 0])
    digit.add_geom(
        name="digit",
        type=mujoco.mjtGeom.mjGEOM_CAPSULE,
        fromto=[0, 0, 0, _CAPSULE, 0, 0],
        size=[0.01, 0, 0],
        material="self",
    )
    wrist = spec.joint("wrist")
    digit.add_joint(
        name="knuckle",
        type=mujoco.mjtJoint.mjJNT_HINGE,
        axis=[0, 0, 1],
        damping=wrist.damping,
        limited=mujoco.mjtLimited.mjLIMITED_TRUE,
        range=wrist.range,
    )
    finger = digit.add_body(name="finger", pos=[_LINK, 0, 0])
    finger.add_geom(name="finger", type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.01, 0, 0], material="effector")
    motor = spec.actuator("wrist")
    spec.add_actuator(
        name="knuckle",
        target="knuckle",
        trntype=mujoco.mjtTrn.mjTRN_JOINT,
        gear=motor.gear,
        ctrlrange=motor.ctrlrange,
        ctrllimited=motor.ctrllimited,
    )
    return spec.to_xml()


def _make(target_size, time_limit, random):
    physics = reacher.Physics.from_xml_string(three_link_xml(), {})
    return control.Environment(physics, reacher.Reacher(target_size=target_size, random=random), time_limit=time_limit)


def three_easy(time_limit=reacher._DEFAULT_TIME_LIMIT, random=None):
    """reacher-three-easy: 5 cm target."""
    return _make(_BIG_TARGET, time_limit, random)


def three_hard(time_limit=reacher._DEFAULT_TIME_LIMIT, random=None):
    """reacher-three-hard: 1.5 cm target."""
    return _make(_SMALL_TARGET, time_limit, random)
