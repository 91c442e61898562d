"""The loop in one process (backend=local) on real dm_control physics and a real Zarr replay store."""

import pytest

from distributed.config import ConfigError, compose, config_from_dict
from distributed.loop import Loop, run
from distributed.run_log import read_metrics
from distributed.testing.jobs import FAST_PLANNER, random_policy_return


def _cfg(tmp_path, **kw):
    base = dict(
        task="cartpole-balance",
        model_size="tiny",
        steps=600,
        seed_steps=500,
        batch_size=64,
        eval_freq=10**9,
        eval_episodes=1,
        eval_max_steps=50,
        checkpoint_freq=300,
        run_dir=str(tmp_path / "run"),
        wandb_mode="disabled",
        progress=False,
        planner=FAST_PLANNER,
    )
    base.update(kw)
    return config_from_dict(base)


@pytest.mark.slow
def test_short_training_clearly_beats_a_random_policy(tmp_path):
    # cartpole-swingup: a random policy earns ~50; 2000 agent steps (1000 of them random seeding) and one
    # update per two steps took the tiny model to 186 and 300 (seeds 1, 2) in development runs (one update
    # per step: 168 for seed 1)
    # the policy update's two departures from TD-MPC2 that this budget was calibrated with: at 1000 updates
    # of the tiny model TD-MPC2's update (the default since session 20) reached 107 at seed 1 (2.0x random);
    # whether the default learns is judged at 1M / 10k steps against TD-MPC2 itself (bench/parity.py)
    cfg = _cfg(
        tmp_path,
        task="cartpole-swingup",
        steps=2000,
        seed_steps=1000,
        utd=0.5,
        eval_freq=2000,
        eval_episodes=2,
        eval_max_steps=None,
        checkpoint_freq=2000,
        diag_freq=2000,
        optim={"pi_scale_init": "first_batch", "pi_entropy": "squashed"},
    )
    summary = run(cfg)
    random_return = random_policy_return("cartpole-swingup", episodes=2, seed=cfg.seed + 17)
    print(f"trained eval return {summary['last_eval_return']:.1f} vs random {random_return:.1f}")
    assert summary["updates"] == 1000
    assert summary["last_eval_return"] > max(2 * random_return, random_return + 80)
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 1000
    evals = read_metrics(tmp_path / "run", "eval")
    assert evals and "return/cartpole-swingup" in evals[-1]
    diag = read_metrics(tmp_path / "run", "diag")
    assert diag and diag[-1]["diag/cartpole-swingup/probe_r2"] is not None
    assert (tmp_path / "run" / "diagnostics" / "cka.png").exists()


# resume (counters, episodes stored once, the same next updates): tests/distributed/test_loop.py


def test_a_run_directory_of_another_run_is_refused(tmp_path):
    run(_cfg(tmp_path, steps=2))
    with pytest.raises(ConfigError, match="belongs to another run"):
        Loop(_cfg(tmp_path, steps=2, task="pendulum-swingup"))


def test_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'stepz'.*steps"):
        compose("train", ["stepz=3"])
    # a known mapping key the composed config holds no entry for: the fix, not "unknown key"
    with pytest.raises(
        ConfigError,
        match=r"'resources_per_evaluator' cannot be overridden here.*\+resources_per_"
        r"evaluator=\{a:1\}",
    ):
        compose("mt80", ["preset=smoke", "resources_per_evaluator={a:1}"])
    assert compose("mt80", ["preset=smoke", "+resources_per_evaluator={a:1}"]).resources_per_evaluator == {"a": 1.0}
    with pytest.raises(ConfigError, match="cartpole-balance"):  # closest names are listed
        Loop(_cfg(tmp_path, task="cartpole-balanse"))
    with pytest.raises(ConfigError, match="unknown model_size"):
        _cfg(tmp_path, model_size="3")
