"""Cheetah variations: running backwards, running on the front or back legs, jumping; and the
suite's cheetah-run itself, all on a physics compiled without the deprecated `settotalmass`."""

from dm_control.rl import control
from dm_control.suite import cheetah
from dm_control.utils import rewards

from envs.total_mass import set_total_mass, split_total_mass

_UP_HEIGHT = 1.2  # torso/foot height (m) above which "up" terms saturate
_INF = float("inf")


def _up(height):
    return rewards.tolerance(height, bounds=(_UP_HEIGHT, _INF), margin=_UP_HEIGHT / 2)


def _linear(x, lower, upper, margin):
    return rewards.tolerance(x, bounds=(lower, upper), margin=margin, value_at_margin=0, sigmoid="linear")


class RunBackwards(cheetah.Cheetah):
    """Reward rises linearly to 1 as forward speed falls to -speed."""

    def __init__(self, speed, random=None):
        super().__init__(random)
        self._speed = speed

    def get_reward(self, physics):
        return _linear(-physics.speed(), self._speed, _INF, self._speed)


class RunOnOneEnd(cheetah.Cheetah):
    """Run forwards with `raised` foot (ffoot or bfoot) and the torso held high."""

    def __init__(self, raised, speed, random=None):
        super().__init__(random)
        self._raised, self._speed = raised, speed

    def get_reward(self, physics):
        up = (3 * _up(physics.named.data.xpos[self._raised, "z"]) + 2 * _up(physics.named.data.xpos["torso", "z"])) / 5
        return up * (5 * _linear(physics.speed(), self._speed, _INF, self._speed) + 1) / 6


class Jump(cheetah.Cheetah):
    """Rewards height: the mean of torso and each foot's height, while staying nearly in place."""

    _STILL_SPEED = 0.5

    def get_reward(self, physics):
        torso_z = physics.named.data.xpos["torso", "z"]
        still = _linear(physics.speed(), -self._STILL_SPEED, self._STILL_SPEED, self._STILL_SPEED)
        ends = [
            (5 * _up((torso_z + physics.named.data.xpos[foot, "z"]) / 2) + still) / 6 for foot in ("bfoot", "ffoot")
        ]
        return sum(ends) / 2


def physics() -> cheetah.Physics:
    """The suite's cheetah model with its 14 kg total mass applied after compiling (envs/total_mass.py)."""
    xml, assets = cheetah.get_model_and_assets()
    xml, total = split_total_mass(xml)
    out = cheetah.Physics.from_xml_string(xml, assets)
    set_total_mass(out.model.ptr, total)
    return out


def _env(task, time_limit):
    return control.Environment(physics(), task, time_limit=time_limit)


def run(time_limit=cheetah._DEFAULT_TIME_LIMIT, random=None):
    """cheetah-run: the suite's task and reward, unchanged."""
    return _env(cheetah.Cheetah(random=random), time_limit)


def run_backwards(time_limit=cheetah._DEFAULT_TIME_LIMIT, random=None):
    """cheetah-run-backwards: 80% of the suite's run speed, backwards."""
    return _env(RunBackwards(0.8 * cheetah._RUN_SPEED, random=random), time_limit)


def run_front(time_limit=cheetah._DEFAULT_TIME_LIMIT, random=None):
    """cheetah-run-front: run on the front legs (back foot raised) at 60% run speed."""
    return _env(RunOnOneEnd("bfoot", 0.6 * cheetah._RUN_SPEED, random=random), time_limit)


def run_back(time_limit=cheetah._DEFAULT_TIME_LIMIT, random=None):
    """cheetah-run-back: run on the back legs (front foot raised) at 60% run speed."""
    return _env(RunOnOneEnd("ffoot", 0.6 * cheetah._RUN_SPEED, random=random), time_limit)


def jump(time_limit=cheetah._DEFAULT_TIME_LIMIT, random=None):
    """cheetah-jump: get the whole body high."""
    return _env(Jump(random=random), time_limit)
