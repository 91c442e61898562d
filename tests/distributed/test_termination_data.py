"""A time limit (truncation) is never stored, sampled or learned as a termination; a fall is.
Real Gymnasium MuJoCo / dm_control physics and a real Zarr replay store."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from dataclasses import replace

import numpy as np
import torch

from agents.agent import Agent
from agents.batch import Batch
from agents.policy import PlanningPolicy
from distributed.config import build_agent_config, compose
from distributed.env_runner import EnvRunner
from envs import load_task_set

SET = "gym-invertedpendulum,cartpole-balance"


def _run(env, action, limit=50):
    env.reset(seed=0)
    flags = []
    for _ in range(limit):
        _, _, term, trunc, _ = env.step(np.asarray(action, np.float32))
        flags.append((term, trunc))
        if term or trunc:
            break
    return flags


def test_env_adapters_report_a_time_limit_as_truncation_and_a_fall_as_termination():
    from envs.catalog import task_spec
    from envs.dmc import DMControlEnv, load_dmc
    from envs.gym_mujoco import make_gym_mujoco

    pend = task_spec("gym-invertedpendulum")
    assert pend.can_terminate and not task_spec("cartpole-balance").can_terminate
    assert not task_spec("mw-reach").can_terminate and task_spec("gym-hopper").can_terminate
    short = replace(pend, episode_length=4)
    still = _run(make_gym_mujoco(short, "InvertedPendulum-v5", seed=0), [0.0])
    assert still == [(False, False)] * 3 + [(False, True)]  # upright at the limit: truncated only
    push = _run(make_gym_mujoco(pend, "InvertedPendulum-v5", seed=0), [1.0])
    assert push[-1] == (True, False) and len(push) < 50  # pushed over: terminated, not truncated
    cart = task_spec("cartpole-balance")
    flags = _run(
        DMControlEnv(load_dmc("cartpole-balance", "cartpole", "balance", 0), replace(cart, episode_length=4)), [1.0]
    )
    assert flags == [(False, False)] * 3 + [(False, True)]


def test_truncated_episodes_are_stored_and_sampled_as_non_terminal(tmp_path):
    from distributed.replay.reader import ShardReader
    from distributed.replay.writer import ShardWriter

    ts = load_task_set(SET)
    cfg = build_agent_config(compose("train", [f"task='{SET}'", "model_size=tiny"]), ts)
    runner = EnvRunner(
        PlanningPolicy(cfg, torch.as_tensor(ts.action_masks())),
        ts,
        list(ts.names),
        envs_per_task=2,
        seed=3,
        max_episode_steps=12,
    )
    episodes, _ = runner.collect(150, random_actions=True)
    writer = ShardWriter(tmp_path / "shard", obs_dim=ts.max_obs_dim, action_dim=ts.max_action_dim, chunk_len=64)
    falls = 0
    for ep in episodes:
        assert not ep["terminated"][:-1].any() and not ep["truncated"][:-1].any()
        if ep["task"] == 1:  # cartpole never terminates: every episode ends at the limit
            assert ep["truncated"][-1] and not ep["terminated"].any() and ep["length"] == 12
        elif ep["length"] < 12:  # the pendulum fell before the limit
            assert ep["terminated"][-1] and not ep["truncated"][-1]
        falls += int(ep["terminated"][-1])
        writer.add_episode(ep["obs"], ep["action"], ep["reward"], ep["terminated"], ep["truncated"], ep["task"])
    writer.close()
    assert falls > 5
    reader = ShardReader(tmp_path / "shard")
    batch = reader.sample(512, 3, np.random.default_rng(0), balance="task", action_masks=ts.action_masks())
    assert "truncated" not in batch  # the learner never sees the time-limit flag
    term = batch["terminated"]
    assert term[:, batch["task"] == 1].sum() == 0  # truncated cartpole episodes: no termination anywhere
    assert term[:, batch["task"] == 0].sum() > 0
    # terminations only on a window's last step of a fallen episode
    assert term[:-1].sum() == 0
    # one model trains on both tasks: the head on the pendulum's falls only
    torch.manual_seed(0)
    agent = Agent(cfg, torch.as_tensor(ts.action_masks()))
    stats = agent.update(Batch.from_numpy(batch))
    assert agent.model.termination_head is not None and 0 < stats["termination_loss"] < 1
    assert all(np.isfinite(v) for v in stats.values())


def test_mixed_task_sets_flag_exactly_the_tasks_that_can_fall():
    falls = {
        "gym-hopper",
        "gym-walker2d",
        "gym-ant",
        "gym-humanoid",
        "gym-invertedpendulum",
        "gym-inverteddoublependulum",
    }
    for name in ("gym-all", "locomotion-mixed", "mt80"):
        ts = load_task_set(name)
        assert ts.can_terminate() == tuple(t in falls for t in ts.names), name
        cfg = build_agent_config(compose("train", [f"task={name}", "model_size=tiny"]), ts)
        assert cfg.can_terminate == ts.can_terminate()
        assert cfg.model.has_termination_head == any(ts.can_terminate())
    assert {t.domain for t in load_task_set("locomotion-mixed").tasks} == {"gym", "dmc"}


def test_a_head_trained_on_truncated_episodes_never_predicts_termination():
    ts = load_task_set(SET)
    cfg = build_agent_config(compose("train", [f"task='{SET}'", "model_size=tiny"]), ts)
    runner = EnvRunner(
        PlanningPolicy(cfg, torch.as_tensor(ts.action_masks())),
        ts,
        ["gym-invertedpendulum"],
        envs_per_task=4,
        seed=5,
        max_episode_steps=4,
    )
    episodes, _ = runner.collect(60, random_actions=True)
    # episodes cut by the 4-step limit with the pendulum still up (the few that fell are left out)
    episodes = [e for e in episodes if e["length"] == 4 and not e["terminated"].any()]
    assert len(episodes) > 20 and all(e["truncated"][-1] for e in episodes)
    n = len(episodes)
    # windows ending on the truncated last step (rows 1..4): the target there must be "not terminated"
    ends = Batch(
        obs=torch.as_tensor(np.stack([e["obs"][1:5] for e in episodes], 1)),
        action=torch.as_tensor(np.stack([e["action"][2:5] for e in episodes], 1)),
        reward=torch.as_tensor(np.stack([e["reward"][2:5] for e in episodes], 1)),
        terminated=torch.as_tensor(np.stack([e["terminated"][2:5] for e in episodes], 1)).float(),
        task=torch.zeros(n, dtype=torch.long),
        action_mask=torch.ones(n, ts.max_action_dim),
    )
    torch.manual_seed(0)
    agent = Agent(cfg, torch.as_tensor(ts.action_masks()))
    for _ in range(60):
        stats = agent.update(ends)
    assert stats["termination_loss"] < 0.5  # from ln 2 at the zero-initialised start
    m, task = agent.model, ends.task
    with torch.no_grad():  # along the model's rollout, as the planner sees it: alive at every step
        z = m.encode(ends.obs[0], task)
        for t in range(3):
            z = m.next(z, ends.action[t], task)
            assert (m.termination(z, task) < 0).all() and (m.alive(z, task) == 1).all()
