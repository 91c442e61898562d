"""CI learning check of the Ray multitask path: one tiny model trained online by Ray actors (an
env-runner actor, a replay-shard actor, a learner actor, an evaluator actor) on two bodies at once,
cartpole-swingup and its procedural variant with a longer pole; every task must beat its random
policy by a clear margin."""

import pytest

from distributed.run_log import read_metrics
from distributed.testing.jobs import compose_run_config, random_policy_return, run_job

pytestmark = pytest.mark.ray

TASKS = ("cartpole-swingup", "cartpole-swingup@length=1.4")
# Development runs at these settings (1500 env steps per task, 1500 updates), seeds 1 and 2: cartpole-swingup
# 293 and 217 against a random 52; the long-pole variant 278 and 218 against a random 32 (at 2000 steps per
# task: 215 / 258 and 203 / 236; at 3000: 205-323 and 164-232; with pointmass-easy as the second task it
# stayed at ~1, as random: too sparse for this budget). The margin is under half the smallest gap seen.
MARGIN = 60.0


@pytest.mark.slow
def test_one_model_learns_two_tasks_on_ray_actors(ray_session, tmp_path):
    steps_per_task = 1500
    cfg = compose_run_config(
        [
            "preset=smoke",
            f"task='{','.join(TASKS)}'",
            f"steps={steps_per_task * len(TASKS)}",
            "max_episode_steps=null",
            "seed_steps=1000",
            "seed_episodes=1",
            "batch_size=64",
            "utd=0.5",
            "max_lag=200",
            "collect_steps=20",
            "updates_per_round=20",
            "publish_every=20",
            "eval_freq=1000000000",
            "eval_episodes=2",
            "eval_max_steps=null",
            "checkpoint_freq=1000000000",
            "diagnostics=false",
            "planner.num_samples=128",
            "planner.num_elites=16",
            "planner.num_pi_trajs=8",
            "planner.iterations=3",
            f"run_dir={tmp_path}/run",
        ]
    )
    summary, _ = run_job(cfg)
    final = read_metrics(tmp_path / "run", "eval")[-1]
    report = {}
    for task in TASKS:
        random_return = random_policy_return(task, episodes=2, seed=cfg.seed + 17)
        report[task] = (final[f"return/{task}"], random_return)
    print("eval return vs random:", report, "updates", summary["updates"], "wall", round(summary["wall_s"]))
    for task, (trained, random_return) in report.items():
        assert trained > random_return + MARGIN, (task, report)
