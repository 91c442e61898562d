"""The TD-MPC2 custom dm_control tasks reward what their names say. Each test puts the body in
a chosen state, takes one zero-action step and compares rewards."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from envs import make_env


def reward_in_state(task, seed=0, **state):
    """Reset `task`, overwrite qpos/qvel entries (`qpos_rootz=1.0`, `qvel_rootx=-8`), step with zeros."""
    env = make_env(task, seed=seed)
    env.reset(seed=seed)
    named = env.physics.named.data
    for key, value in state.items():
        field, joint = key.split("_", 1)
        getattr(named, field)[joint] = value
    env.physics.forward()
    return env.step(np.zeros(env.action_space.shape, np.float32))[1]


@pytest.mark.parametrize(
    "task,speed",
    [
        ("walker-walk-backwards", 1.5),
        ("walker-run-backwards", 8.0),
        ("cheetah-run-backwards", 8.0),
        ("hopper-hop-backwards", 2.0),
    ],
)
def test_backwards_tasks_pay_for_moving_backwards(task, speed):
    backwards = reward_in_state(task, qvel_rootx=-speed)
    forwards = reward_in_state(task, qvel_rootx=speed)
    assert backwards > forwards + 0.25, (backwards, forwards)


def test_forward_task_orders_the_other_way():  # guards the sign convention the test above relies on
    assert reward_in_state("walker-run", qvel_rootx=8.0) > reward_in_state("walker-run", qvel_rootx=-8.0) + 0.25


def test_cheetah_jump_rewards_height():
    on_ground = reward_in_state("cheetah-jump")
    lifted = reward_in_state("cheetah-jump", qpos_rootz=1.0)
    assert lifted > on_ground + 0.3, (lifted, on_ground)


@pytest.mark.parametrize("pitch", [0.9, -0.9])
def test_cheetah_run_front_and_back_want_the_other_foot_up(pitch):
    env = make_env("cheetah-run-front")
    env.reset(seed=0)
    env.physics.named.data.qpos["rooty"] = pitch
    env.physics.forward()
    back_foot_higher = env.physics.named.data.xpos["bfoot", "z"] > env.physics.named.data.xpos["ffoot", "z"]
    state = dict(qpos_rooty=pitch, qpos_rootz=0.6, qvel_rootx=6.0)
    front = reward_in_state("cheetah-run-front", **state)
    back = reward_in_state("cheetah-run-back", **state)
    assert (front > back) == back_foot_higher, (front, back)


def test_reacher_three_has_three_links_and_rewards_touching_the_target():
    env = make_env("reacher-three-easy", seed=0)
    env.reset(seed=0)
    physics = env.physics
    assert physics.model.njnt == 3 and physics.model.nu == 3 and env.action_space.shape == (3,)
    physics.data.qpos[:] = 0
    physics.forward()
    assert np.linalg.norm(physics.named.data.geom_xpos["finger", :2]) == pytest.approx(0.24)  # total reach
    physics.named.model.geom_pos["target", :2] = physics.named.data.geom_xpos["finger", :2]
    assert env.step(np.zeros(3, np.float32))[1] > 1.9  # 1 per physics step, 2 repeats
    physics.named.model.geom_pos["target", :2] = [-0.2, -0.1]
    assert env.step(np.zeros(3, np.float32))[1] == 0.0


def test_reacher_three_hard_has_the_small_target():
    easy, hard = make_env("reacher-three-easy"), make_env("reacher-three-hard")
    easy.reset(seed=0), hard.reset(seed=0)
    assert hard.physics.named.model.geom_size["target", 0] < easy.physics.named.model.geom_size["target", 0]


def test_cup_spin_pays_for_a_fast_ball_far_from_the_cup_not_one_inside_it():
    inside = reward_in_state("cup-spin")  # spin starts with the ball in the cup (most seeds)
    flung = reward_in_state("cup-spin", qpos_ball_x=0.3, qpos_ball_z=-0.3, qvel_ball_x=8.0, qvel_ball_z=-6.0)
    assert inside == 0.0 and flung > 1.0, (inside, flung)


def test_pendulum_spin_rewards_angular_speed_either_way():
    still = reward_in_state("pendulum-spin", qpos_hinge=np.pi, qvel_hinge=0.0)
    assert reward_in_state("pendulum-spin", qvel_hinge=12.0) > 1.9
    assert reward_in_state("pendulum-spin", qvel_hinge=-12.0) > 1.9
    assert still < 0.2
