"""Constrained runs end to end on real dm_control physics: the env runner's executed actions
(seeding, planned, mixed) and the evaluator's obey the run's limits across episode boundaries, and
both count violations; constraint data and overrides resolve per task, variants inherit their body's."""

import dataclasses

import numpy as np
import pytest
import torch

from agents.policy import PlanningPolicy
from distributed.config import ConfigError, build_agent_config, compose
from distributed.env_runner import EnvRunner
from distributed.evaluator import eval_row, evaluate, evaluate_policy
from embodiments.constraints import ConstraintOptions, run_constraints, task_constraints
from envs import load_task_set

SET = "cheetah-run,cartpole-balance"  # 6 and 1 action dims: cartpole's row is padded
PLANNER = ["planner.num_samples=32", "planner.num_elites=4", "planner.num_pi_trajs=4", "planner.iterations=2"]


def _policy(ts, *overrides):
    cfg = build_agent_config(compose("train", [f"task='{SET}'", "model_size=tiny", *PLANNER, *overrides]), ts)
    return PlanningPolicy(cfg, torch.as_tensor(ts.action_masks()))


def _check_episode(actions: np.ndarray, lo: float, hi: float, rate: float) -> None:
    """One stored episode's executed actions [T, dim]: in [lo, hi] and within rate of the previous step."""
    assert (actions >= lo - 1e-6).all() and (actions <= hi + 1e-6).all()
    assert (np.abs(np.diff(actions, axis=0)) <= rate + 1e-6).all(), np.abs(np.diff(actions, axis=0)).max()


def test_runner_and_evaluator_actions_obey_the_limits_across_episodes():
    ts = load_task_set(SET)
    policy = _policy(ts, "constraints.max_delta=[0.2]", "constraints.lo=[-0.5]")
    runner = EnvRunner(policy, ts, list(ts.names), seed=1, max_episode_steps=8)
    episodes, _ = runner.collect(10, random_actions=True)  # seeding: random actions, projected
    more, _ = runner.collect(6, random_tasks=(1,))  # cheetah planned, cartpole random in the same step
    planned, stats = runner.collect(8)
    episodes += more + planned
    assert len(episodes) >= 4 and {e["task"] for e in episodes} == {0, 1}
    steps = 0
    for ep in episodes:
        dim = ts.tasks[ep["task"]].action_dim
        _check_episode(ep["action"][1:, :dim], -0.5, 1.0, 0.2)  # row 0 holds no action
        assert (ep["action"][:, dim:] == 0).all() and ep["constraint_violations"] == 0
        steps += len(ep["action"]) - 1
    assert stats["constraint_violations"] == 0 and runner.violations == 0
    # the limits bind: unconstrained random actions would move by ~0.67 per step on average
    diffs = np.concatenate([np.abs(np.diff(e["action"][1:, :1], axis=0)).ravel() for e in episodes])
    assert (diffs > 0.19).mean() > 0.3

    result = evaluate(policy, ts, episodes=1, max_steps=10)
    assert result["constraint_violations"] == {
        "total": 0,
        "steps": 20,
        "tasks": {"cheetah-run": 0, "cartpole-balance": 0},
    }
    assert eval_row(result)["constraint_violations"] == 0


def test_evaluator_counts_the_violations_of_an_unconstrained_policy():
    ts = load_task_set(SET)
    table = _policy(ts, "constraints.max_delta=[0.2]").constraints
    rng = np.random.default_rng(0)

    def random_act(obs, task_ids, rows):
        return rng.uniform(-1, 1, (len(rows), ts.max_action_dim)).astype(np.float32) * ts.action_masks()[task_ids]

    result = evaluate_policy(random_act, ts, episodes=1, max_steps=10, violations_fn=table.violations)
    assert result["constraint_violations"]["total"] > 10  # of 20 steps, the first two measured from nothing
    assert "constraint_violations" not in evaluate_policy(random_act, ts, episodes=1, max_steps=3)


def test_constraints_off_by_default_and_bad_overrides_name_task_and_field():
    ts = load_task_set(SET)
    assert _policy(ts).constraints is None and _policy(ts).cfg.constraints is None
    with pytest.raises(ValueError, match=r"task 'cheetah-run'.*constraints.max_delta has 2 values.*action_dim is 6"):
        _policy(ts, "constraints.max_delta=[0.2,0.2]")
    with pytest.raises(ValueError, match=r"task 'cheetah-run'.*constraints.lo/hi"):
        _policy(ts, "constraints.lo=[0.5]", "constraints.hi=[0.2]")
    with pytest.raises(ValueError, match=r"constraints.max_delta must be > 0"):
        _policy(ts, "constraints.max_delta=[-0.1]")
    with pytest.raises(ConfigError, match="constraints.max_delta"):
        compose("train", ["constraints.max_delta=fast"])


def test_variants_inherit_their_body_s_constraints_and_a_run_overrides_fields():
    ts = load_task_set("cheetah-run,cheetah-run@mass=1.5,cartpole-balance")
    table = {"cheetah": {"max_delta": [0.3], "lo": [-0.8]}}
    base, variant, cart = run_constraints(ts, table=table)
    assert base == variant and cart is None
    assert base.max_delta == (0.3,) * 6 and base.lo == (-0.8,) * 6 and base.hi == (1.0,) * 6
    assert task_constraints("cheetah-run@leg=0.8", table).max_delta == (0.3,)
    # a run override replaces one field and keeps the data's others; from_data=false drops the data
    over = run_constraints(ts, ConstraintOptions(max_delta=[0.1]), table=table)
    assert over[1].max_delta == (0.1,) * 6 and over[1].lo == (-0.8,) * 6 and over[2].max_delta == (0.1,)
    assert run_constraints(ts, ConstraintOptions(from_data=False), table=table) is None
    with pytest.raises(ValueError, match=r"task 'cheetah-run' \(embodiment 'cheetah'\).*max_delta"):
        task_constraints("cheetah-run", {"cheetah": {"max_delta": [0.2, 0.2]}})
    with pytest.raises(ValueError, match="unknown constraint fields"):
        task_constraints("cheetah-run", {"cheetah": {"max_rate": [0.2]}})
    # the shipped data: the catalogue bodies have only the [-1, 1] box
    assert run_constraints(ts) is None and dataclasses.fields(ConstraintOptions)


def test_latency_return_table_counts_violations_and_prices_the_constraints():
    from agents.agent import Agent
    from agents.config import ActionConstraints, make_agent_config
    from agents.diagnostics import format_table, latency_return_table, parse_setting
    from envs import make_padded_env

    ts = load_task_set("cheetah-run")
    cfg = make_agent_config(
        obs_dim=ts.max_obs_dim,
        action_dim=6,
        episode_lengths=[500],
        model_size="tiny",
        constraints=(ActionConstraints(max_delta=(0.05,)).resolved("cheetah-run", 6),),
    )
    torch.manual_seed(0)
    agent = Agent(cfg, torch.as_tensor(ts.action_masks()))
    settings = [parse_setting("h3-i2-n32"), parse_setting("h3-i2-n32-free")]
    table = latency_return_table(
        agent, lambda t, s: make_padded_env(ts, t, s), {"cheetah-run": 0}, settings, max_steps=8
    )
    constrained, free = table["rows"]
    assert constrained["constraint_violations"] == 0 and free["constraint_violations"] > 0
    assert "violations |" in format_table(table["rows"]).splitlines()[0]
    assert [t["setting"] for t in table["tradeoff"]] == ["h3-i2-n32", "h3-i2-n32-free"]


def test_a_constrained_training_run_stores_only_feasible_actions_and_reports_zero_violations(tmp_path):
    from distributed.loop import run
    from distributed.run_log import read_metrics

    summary = run(
        compose(
            "train",
            [
                "task=cartpole-balance",
                "model_size=tiny",
                "steps=80",
                "seed_steps=40",
                "max_episode_steps=30",
                "batch_size=16",
                "eval_freq=1000",
                "eval_episodes=1",
                "eval_max_steps=20",
                "diagnostics=false",
                "wandb_mode=disabled",
                "progress=false",
                "constraints.max_delta=[0.2]",
                f"run_dir={tmp_path}/run",
                *PLANNER,
            ],
        )
    )
    assert summary["updates"] > 0 and summary["constraint_violations"] == 0
    assert read_metrics(tmp_path / "run", "eval")[-1]["constraint_violations"] == 0
    import zarr

    from distributed.replay.inspect import episode_index

    shard = tmp_path / "run" / "replay" / "shard-000"
    index, actions = episode_index(shard), zarr.open_group(str(shard), mode="r")["action"][:]
    assert len(index["start"]) >= 2  # several episodes, each checked from its first stored action
    for start, length in zip(index["start"], index["length"], strict=False):
        _check_episode(actions[start + 1 : start + length, :1], -1.0, 1.0, 0.2)  # row 0 holds no action
