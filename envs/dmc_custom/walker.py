"""Walker moving backwards: the suite's stand term times a speed term for velocity <= -speed."""

from dm_control.rl import control
from dm_control.suite import walker
from dm_control.utils import rewards


class BackwardsWalker(walker.PlanarWalker):
    """Rewards standing upright while the torso moves backwards at `move_speed` or faster."""

    def get_reward(self, physics):
        standing = rewards.tolerance(
            physics.torso_height(), bounds=(walker._STAND_HEIGHT, float("inf")), margin=walker._STAND_HEIGHT / 2
        )
        upright = (1 + physics.torso_upright()) / 2
        stand = (3 * standing + upright) / 4
        backwards = rewards.tolerance(
            -physics.horizontal_velocity(),
            bounds=(self._move_speed, float("inf")),
            margin=self._move_speed / 2,
            value_at_margin=0.5,
            sigmoid="linear",
        )
        return stand * (5 * backwards + 1) / 6


def _make(speed, time_limit, random):
    physics = walker.Physics.from_xml_string(*walker.get_model_and_assets())
    return control.Environment(
        physics,
        BackwardsWalker(move_speed=speed, random=random),
        time_limit=time_limit,
        control_timestep=walker._CONTROL_TIMESTEP,
    )


def walk_backwards(time_limit=walker._DEFAULT_TIME_LIMIT, random=None):
    """walker-walk-backwards: walk speed (1 m/s) backwards."""
    return _make(walker._WALK_SPEED, time_limit, random)


def run_backwards(time_limit=walker._DEFAULT_TIME_LIMIT, random=None):
    """walker-run-backwards: run speed (8 m/s) backwards."""
    return _make(walker._RUN_SPEED, time_limit, random)
