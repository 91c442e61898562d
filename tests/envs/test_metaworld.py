"""Meta-World specifics: the success flag, 100-step episodes, goals resampled per reset."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

from envs import make_env


def test_reaching_the_goal_sets_success_and_episode_ends_at_100_steps():
    env = make_env("mw-reach", seed=0)
    obs, _ = env.reset(seed=0)
    successes = []
    for t in range(100):
        hand, goal = obs[:3], obs[36:39]  # v3 observation layout: hand xyz first, goal xyz last
        action = np.append(np.clip((goal - hand) * 10.0, -1, 1), 0.0).astype(np.float32)
        obs, _, terminated, truncated, info = env.step(action)
        successes.append(info["success"])
        assert not terminated and truncated == (t == 99)
    assert successes[0] == 0.0 and successes[-1] == 1.0


def test_goal_changes_between_resets_and_seeds_but_not_for_the_same_seed():
    env = make_env("mw-reach", seed=0)
    goals = [env.reset()[0][36:39], env.reset()[0][36:39], env.reset(seed=0)[0][36:39]]
    assert not np.allclose(goals[0], goals[1])
    np.testing.assert_array_equal(goals[0], goals[2])
    other = make_env("mw-reach", seed=1).reset()[0][36:39]
    assert not np.allclose(goals[0], other)
