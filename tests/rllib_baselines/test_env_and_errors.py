"""RLlib sees our tasks exactly as our runs do; bad algorithm names and task sets fail clearly."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distributed.baselines.algos import BaselineError, build_algo_config, check_algorithm, check_task_set
from distributed.baselines.env import register_env
from distributed.baselines.run import BaselineConfig
from distributed.config import ConfigError, compose_options
from envs import UnknownNameError, load_task_set, make_padded_env

ROOT = Path(__file__).resolve().parents[2]


def _rllib_env_runner(task_set: str, seed: int):
    """The vector env of an RLlib EnvRunner built from our registered env, as RLlib trains on it."""
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    config = build_algo_config(
        "ppo", register_env(task_set), {"task_set": task_set, "seed": seed}, seed=seed, model={"fcnet_hiddens": [8]}
    )
    return SingleAgentEnvRunner(config=config)


@pytest.mark.parametrize("task_set", ["cartpole-swingup", "cartpole-swingup,reacher-easy"])
def test_the_env_rllib_builds_gives_our_observations_for_the_same_seed_and_actions(task_set):
    runner = _rllib_env_runner(task_set, seed=3)
    env = runner.env
    ts = load_task_set(task_set)
    multitask = len(ts) > 1
    assert env.single_observation_space.shape == (ts.max_obs_dim + (len(ts) if multitask else 0),)
    assert env.single_action_space.shape == (ts.max_action_dim,)
    rng = np.random.default_rng(0)
    for reset_seed in (11, 12, 13):
        obs, _ = env.reset(seed=reset_seed)
        inner = env.unwrapped.envs[0].unwrapped
        task = inner.current
        ours = make_padded_env(ts, task, seed=3)
        expected, _ = ours.reset(seed=reset_seed)
        for _t in range(25):
            np.testing.assert_array_equal(obs[0, : ts.max_obs_dim], expected)
            if multitask:  # the task id one-hot follows the padded observation
                np.testing.assert_array_equal(obs[0, ts.max_obs_dim :], np.eye(len(ts))[ts.index(task)])
            assert env.single_observation_space.contains(obs[0])
            action = rng.uniform(-1, 1, ts.max_action_dim).astype(np.float32)
            obs, reward, term, trunc, _ = env.step(action[None])
            expected, r, te, tr, _ = ours.step(action)
            assert reward[0] == pytest.approx(r, abs=1e-6) and bool(term[0]) == te and bool(trunc[0]) == tr
        ours.close()
    runner.stop()


def test_a_task_set_draws_every_member_and_a_fixed_task_stays():
    from distributed.baselines.env import LatentfleetEnv

    env = LatentfleetEnv({"task_set": "cartpole-swingup,reacher-easy", "seed": 0})
    seen = {env.reset(seed=s)[0][-2:].argmax() for s in range(20)}
    assert seen == {0, 1}
    env = LatentfleetEnv({"task_set": "cartpole-swingup,reacher-easy", "task": "reacher-easy", "max_episode_steps": 3})
    obs, _ = env.reset(seed=0)
    assert obs[-2:].tolist() == [0.0, 1.0]
    assert [env.step(np.zeros(2, np.float32))[3] for _ in range(3)] == [False, False, True]  # capped episodes


def test_every_task_and_set_name_is_an_rllib_env():
    from ray.tune.registry import ENV_CREATOR, _global_registry

    from distributed.baselines.env import register_all_envs

    ids = register_all_envs()
    assert {"latentfleet/mt30", "latentfleet/cartpole-swingup", "latentfleet/mw-reach"} <= set(ids)
    env = _global_registry.get(ENV_CREATOR, "latentfleet/reacher-easy")({"seed": 4})
    obs, _ = env.reset(seed=4)
    np.testing.assert_array_equal(
        obs, make_padded_env(load_task_set("reacher-easy"), "reacher-easy", 4).reset(seed=4)[0]
    )


def test_an_algorithm_rllib_lacks_or_we_do_not_run_is_a_clear_error():
    assert check_algorithm("SAC") == "sac" and check_algorithm("DreamerV3") == "dreamerv3"
    with pytest.raises(
        BaselineError,
        match=r"algo='sacc': RLlib .* has no algorithm .*supported here: sac, ppo, "
        r"dreamerv3.*did you mean sac",
    ):
        check_algorithm("sacc")
    with pytest.raises(BaselineError, match=r"RLlib has APPO, but it is not one of the baselines"):
        check_algorithm("appo")
    with pytest.raises(BaselineError, match="no algorithm"):
        BaselineConfig(algo="td3", task="cartpole-swingup")


def test_a_task_set_for_a_single_task_algorithm_is_a_clear_error_and_sac_ppo_take_it():
    with pytest.raises(
        BaselineError,
        match=r"algo=dreamerv3 trains on one task, but task='mt30' is a set of 30 "
        r"tasks .* use sac, ppo",
    ):
        BaselineConfig(algo="dreamerv3", task="mt30")
    check_task_set("dreamerv3", load_task_set("cartpole-swingup"))
    for algo in ("sac", "ppo"):
        assert BaselineConfig(algo=algo.upper(), task="mt30").algo == algo
    with pytest.raises(UnknownNameError, match="closest: cartpole-swingup"):
        BaselineConfig(algo="sac", task="cartpole-swingupp")
    with pytest.raises(ConfigError, match=r"unknown config key 'stpes' \(closest: \['steps'\]\)"):
        compose_options(BaselineConfig, ["stpes=10"])
    with pytest.raises(ConfigError, match="ray.num_cpus"):
        compose_options(BaselineConfig, ["ray.num_cpus=all"])
    cfg = compose_options(BaselineConfig, ["algo=ppo", "task=mt30", "+training.num_epochs=2", "ray.num_cpus=2"])
    assert cfg.run_dir == "runs/baselines/ppo/mt30/s1" and cfg.training == {"num_epochs": 2} and cfg.ray.num_cpus == 2


def test_the_launch_command_reports_a_bad_algorithm_without_a_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "launch" / "baseline.py"),
            "algo=dreamerv3",
            "task=mt30",
            f"run_dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "error: algo=dreamerv3 trains on one task" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_the_launch_command_fails_at_once_on_a_bad_override_naming_the_key(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "launch" / "baseline.py"), f"run_dir={tmp_path / 'run'}", "steps=many"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "steps" in proc.stderr and "Traceback" not in proc.stderr
    assert "ray:" not in proc.stdout and list(tmp_path.iterdir()) == []  # before Ray starts; nothing written
