"""Hopper hopping backwards: standing term times a backward hop-speed term."""

from dm_control.rl import control
from dm_control.suite import hopper
from dm_control.utils import rewards


class HopBackwards(hopper.Hopper):
    """Upright (torso 0.6-2 m above the foot) while moving backwards at >= 1 m/s."""

    def __init__(self, random=None):
        super().__init__(hopping=True, random=random)

    def get_reward(self, physics):
        standing = rewards.tolerance(physics.height(), (hopper._STAND_HEIGHT, 2))
        backwards = rewards.tolerance(
            -physics.speed(),
            bounds=(hopper._HOP_SPEED / 2, float("inf")),
            margin=hopper._HOP_SPEED / 4,
            value_at_margin=0.5,
            sigmoid="linear",
        )
        return standing * backwards


def hop_backwards(time_limit=hopper._DEFAULT_TIME_LIMIT, random=None):
    """hopper-hop-backwards."""
    physics = hopper.Physics.from_xml_string(*hopper.get_model_and_assets())
    return control.Environment(
        physics, HopBackwards(random=random), time_limit=time_limit, control_timestep=hopper._CONTROL_TIMESTEP
    )
