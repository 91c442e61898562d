"""Ball-in-cup spin: swing the ball around the cup fast and far from the target, not inside it."""

import collections

import numpy as np
from dm_control.rl import control
from dm_control.suite import ball_in_cup, base
from dm_control.utils import rewards

_FAR = 0.5  # ball-to-target distance (m) for the full distance term
_FAST = 6.0  # ball speed (m/s) for the full speed term
_START_OUTSIDE = 0.1  # fraction of episodes whose ball may start outside the cup


class Spin(ball_in_cup.BallInCup):
    """Starts (mostly) with the ball in the cup; rewards distance and speed while out of it."""

    def initialize_episode(self, physics):
        anywhere = self.random.uniform() < _START_OUTSIDE
        while True:  # rejection-sample a collision-free start, inside the cup unless `anywhere`
            physics.named.data.qpos["ball_x"] = self.random.uniform(-0.2, 0.2)
            physics.named.data.qpos["ball_z"] = self.random.uniform(0.2, 0.5)
            physics.after_reset()
            if physics.data.ncon == 0 and (anywhere or physics.in_target()):
                break
        base.Task.initialize_episode(self, physics)

    def get_observation(self, physics):
        return collections.OrderedDict(position=physics.position(), velocity=physics.velocity())

    def get_reward(self, physics):
        dist = float(np.linalg.norm(physics.ball_to_target()))
        speed = float(np.linalg.norm(physics.named.data.qvel[["ball_x", "ball_z"]]))
        far = rewards.tolerance(
            dist, bounds=(_FAR, float("inf")), margin=_FAR / 2, value_at_margin=0.5, sigmoid="linear"
        )
        fast = rewards.tolerance(
            speed, bounds=(_FAST, float("inf")), margin=_FAST / 2, value_at_margin=0.5, sigmoid="linear"
        )
        return (1 - physics.in_target()) * (far + 2 * fast) / 3


def spin(time_limit=ball_in_cup._DEFAULT_TIME_LIMIT, random=None):
    """cup-spin."""
    physics = ball_in_cup.Physics.from_xml_string(*ball_in_cup.get_model_and_assets())
    return control.Environment(
        physics, Spin(random=random), time_limit=time_limit, control_timestep=ball_in_cup._CONTROL_TIMESTEP
    )
