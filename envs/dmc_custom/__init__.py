"""The 11 custom dm_control tasks of TD-MPC2's mt30, written from their published reward
definitions. `CUSTOM_TASKS[(domain, task)](random=..., time_limit=...)` builds one."""

from envs.dmc_custom import cheetah, cup, hopper, pendulum, reacher, walker

CUSTOM_TASKS = {
    ("walker", "walk_backwards"): walker.walk_backwards,
    ("walker", "run_backwards"): walker.run_backwards,
    ("cheetah", "run_backwards"): cheetah.run_backwards,
    ("cheetah", "run_front"): cheetah.run_front,
    ("cheetah", "run_back"): cheetah.run_back,
    ("cheetah", "jump"): cheetah.jump,
    ("hopper", "hop_backwards"): hopper.hop_backwards,
    ("reacher", "three_easy"): reacher.three_easy,
    ("reacher", "three_hard"): reacher.three_hard,
    ("ball_in_cup", "spin"): cup.spin,
    ("pendulum", "spin"): pendulum.spin,
}

# suite tasks built here rather than by `suite.load`: their MJCF uses a deprecated compiler attribute
REBUILT_SUITE_TASKS = {("cheetah", "run"): cheetah.run}
