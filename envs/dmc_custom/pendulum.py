"""Pendulum spin: reward for angular speed (either direction) of at least 9 rad/s."""

import numpy as np
from dm_control.rl import control
from dm_control.suite import pendulum
from dm_control.utils import rewards

_SPIN_SPEED = 9.0


class Spin(pendulum.SwingUp):
    """Same start states and observations as swing-up; the reward is for spinning fast."""

    def get_reward(self, physics):
        return rewards.tolerance(
            float(np.linalg.norm(physics.angular_velocity())),
            bounds=(_SPIN_SPEED, float("inf")),
            margin=_SPIN_SPEED / 2,
            value_at_margin=0.5,
            sigmoid="linear",
        )


def spin(time_limit=pendulum._DEFAULT_TIME_LIMIT, random=None):
    """pendulum-spin."""
    physics = pendulum.Physics.from_xml_string(*pendulum.get_model_and_assets())
    return control.Environment(physics, Spin(random=random), time_limit=time_limit)
