"""The termination head: trained only on tasks that can terminate, used by the planner only for them."""

import dataclasses
import math

import pytest
import torch

from agents.agent import Agent
from agents.batch import Batch
from agents.config import PlannerConfig, make_agent_config
from agents.planner import PlannerState, estimate_value, plan_batch
from agents.world_model import WorldModel

SMALL = dict(horizon=3, iterations=3, num_samples=64, num_elites=8, num_pi_trajs=8)


def _cfg(can_terminate, optim=None, **kw):
    return make_agent_config(
        obs_dim=3,
        action_dim=1,
        episode_lengths=[500] * len(can_terminate),
        model_size="tiny",
        optim=optim or {},
        planner=SMALL,
        can_terminate=can_terminate,
        **kw,
    )


def cliff_windows(n: int, horizon: int, task: int, gen: torch.Generator) -> Batch:
    """Windows of x' = x + 0.8 a that end (terminated) once |x'| > 1, as a replay store holds them:
    a termination only on a window's last step (windows never cross an episode's end)."""
    obs, act, term = [], [], []
    while len(obs) < n:
        x = torch.rand(1, generator=gen) * 2 - 1
        a = torch.rand(horizon, generator=gen) * 2 - 1
        xs = [x]
        for t in range(horizon):
            xs.append(xs[-1] + 0.8 * a[t])
        out = torch.cat(xs[1:]).abs() > 1
        if out[:-1].any():
            continue  # the episode ended inside the window: no such window in a store
        obs.append(torch.stack([torch.cat([v, v**2, torch.ones(1)]) for v in xs]))
        act.append(a.view(horizon, 1))
        term.append(out.float())
    return Batch(
        obs=torch.stack(obs, 1),
        action=torch.stack(act, 1),
        reward=torch.ones(horizon, n),
        terminated=torch.stack(term, 1),
        task=torch.full((n,), task, dtype=torch.long),
        action_mask=torch.ones(n, 1),
    )


def test_termination_loss_falls_on_data_with_known_terminations():
    torch.manual_seed(0)
    agent = Agent(_cfg([True]))
    gen = torch.Generator().manual_seed(0)
    data = [cliff_windows(128, 3, 0, gen) for _ in range(8)]
    rate = torch.cat([b.terminated.flatten() for b in data]).mean()
    base = float(torch.nn.functional.binary_cross_entropy(rate, rate))  # best constant prediction
    losses = [agent.update(data[i % len(data)])["termination_loss"] for i in range(300)]
    first, last = sum(losses[:10]) / 10, sum(losses[-20:]) / 20
    print(f"termination rate {rate:.3f}, BCE first {first:.3f} last {last:.3f}, base-rate BCE {base:.3f}")
    assert losses[0] == pytest.approx(0.6931, abs=1e-3)  # zero-initialised output: p = 0.5
    assert last < 0.5 * base


def test_termination_pos_weight_weighs_terminated_steps():
    batch = cliff_windows(128, 3, 0, torch.Generator().manual_seed(3))
    assert 0 < float(batch.terminated.mean()) < 1
    for w in (1.0, 8.0):
        torch.manual_seed(0)
        agent = Agent(_cfg([True], optim={"termination_pos_weight": w}))
        # zero-initialised logits: BCE ln 2 per step, a terminated step counted w times
        expected = 0.6931 * float((w * batch.terminated + (1 - batch.terminated)).mean())
        assert agent.update(batch)["termination_loss"] == pytest.approx(expected, rel=1e-3)
    with pytest.raises(ValueError, match="termination_pos_weight"):
        _cfg([True], optim={"termination_pos_weight": 0.0})


@pytest.mark.parametrize("detach", [False, True])
def test_a_detached_head_learns_without_shaping_the_latent(detach):
    torch.manual_seed(0)
    agent = Agent(_cfg([True], optim={"termination_detach": detach}))
    m = agent.model
    with torch.no_grad():  # a head whose logit depends on the latent (its output layer starts at zero)
        m.termination_head[-1].weight.normal_(0, 0.5)
    b = cliff_windows(64, 3, 0, torch.Generator().manual_seed(2))
    H = b.action.shape[0]
    rho = agent.cfg.optim.rho ** torch.arange(H, dtype=torch.float32)
    gamma = agent.discounts[b.task].view(1, -1, 1)
    not_done = 1.0 - b.terminated.unsqueeze(-1)
    *_, extra, _ = agent.world_model_loss(b.obs, b.action, b.reward.unsqueeze(-1), b.task, not_done, rho, gamma)
    extra["termination_loss"].backward()
    reaches = [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in m.encoder.parameters()]
    assert any(reaches) != detach  # TD-MPC2's head shapes the encoder; a detached one does not
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.termination_head.parameters())


def test_tasks_that_never_terminate_pay_nothing_for_the_head():
    torch.manual_seed(0)
    agent = Agent(_cfg([True, False]))
    batch = cliff_windows(64, 3, 1, torch.Generator().manual_seed(1))
    batch.terminated.fill_(1.0)  # even flags stored for task 1 (e.g. a dm_control discount of 0) are ignored
    before = [p.clone() for p in agent.model.termination_head.parameters()]
    stats = agent.update(batch)
    assert stats["termination_loss"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, agent.model.termination_head.parameters(), strict=False))
    # a batch of task 0 does train it
    agent.update(cliff_windows(64, 3, 0, torch.Generator().manual_seed(2)))
    assert not all(torch.equal(a, b) for a, b in zip(before, agent.model.termination_head.parameters(), strict=False))


def test_a_task_set_without_terminating_tasks_has_no_head():
    torch.manual_seed(0)
    plain = WorldModel(_cfg([False, False]).model)
    next_draw_plain = torch.rand(4)
    torch.manual_seed(0)
    off = WorldModel(_cfg([True, False], model={"termination_head": False}).model)
    torch.manual_seed(0)
    on = WorldModel(_cfg([True, False]).model)
    # the head's initial weights come from a fork of the generator: later draws (dropout, policy noise) are
    # the same numbers with or without it, so a run with the head and one without are paired
    assert torch.equal(torch.rand(4), next_draw_plain)
    assert plain.termination_head is None and off.termination_head is None and on.termination_head is not None
    assert plain.state_dict().keys() == off.state_dict().keys()
    extra = set(on.state_dict()) - set(plain.state_dict())
    assert extra and all(k.startswith("termination_head.") or k == "can_terminate" for k in extra)
    # the head is created last: every other component starts from the same weights
    assert all(torch.equal(v, on.state_dict()[k]) for k, v in plain.state_dict().items())


@pytest.mark.parametrize("used, mode", [(True, "hard"), (False, "off")])
def test_a_checkpoint_saved_with_planner_use_termination_loads_as_planner_termination(used, mode):
    from agents.checkpoint import config_from_checkpoint

    state = Agent(_cfg([True, False])).state_dict()
    planner = state["config"]["planner"]
    del planner["termination"]
    planner["use_termination"] = used  # the key of checkpoints written before planner.termination
    assert config_from_checkpoint({"agent": state}).planner.termination == mode


def test_a_checkpoint_with_a_head_does_not_load_into_a_model_without_one():
    with_head, without = Agent(_cfg([True, False])), Agent(_cfg([True, False], model={"termination_head": False}))
    with pytest.raises(ValueError, match="termination_head"):
        without.load_state_dict(with_head.state_dict())


def test_plans_for_non_terminating_tasks_are_bitwise_unchanged_with_the_head():
    torch.manual_seed(0)
    plain = WorldModel(_cfg([False, False]).model).eval()
    with torch.no_grad():  # non-trivial reward/value heads (they start zeroed) so elites are not ties
        for p in list(plain.reward_head[-1].parameters()) + list(plain.qs.out.parameters()):
            p.normal_(0, 0.5)
    headed = WorldModel(_cfg([True, False]).model).eval()
    headed.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        headed.termination_head[-1].bias.fill_(5.0)  # predicts a termination after every step
    obs = torch.randn(4, 3, generator=torch.Generator().manual_seed(3))
    task = torch.tensor([1, 0, 1, 0])
    pcfg = PlannerConfig(**SMALL)
    discounts = torch.tensor([0.99, 0.99])
    runs = []
    ignoring = dataclasses.replace(pcfg, termination="off")  # the head trained, the planner ignores it
    soft = dataclasses.replace(pcfg, termination="soft")
    for m, c in ((plain, pcfg), (headed, pcfg), (headed, ignoring), (headed, soft)):
        state = PlannerState.create(4, 3, 1, seed=7)
        actions = [plan_batch(m, obs, task, state, c, discounts) for _ in range(3)]  # warm starts too
        runs.append(actions)
    rows = task == 1
    for (a0, i0), (a1, i1), (a2, i2), (a3, i3) in zip(*runs, strict=False):
        assert torch.equal(a0[rows], a1[rows]) and torch.equal(a0[rows], a3[rows])
        assert torch.equal(i0.elite_value[rows], i3.elite_value[rows]) and torch.equal(i0.mean[rows], i3.mean[rows])
        assert torch.equal(i0.elite_value[rows], i1.elite_value[rows])
        assert torch.equal(i0.mean[rows], i1.mean[rows])
        # the terminating rows do see the head: only the first reward survives
        assert not torch.equal(i0.elite_value[~rows], i1.elite_value[~rows])
        assert not torch.equal(i0.elite_value[~rows], i3.elite_value[~rows])
        # planner.termination=off: every row plans as without the head
        assert torch.equal(a0, a2) and torch.equal(i0.elite_value, i2.elite_value) and torch.equal(i0.mean, i2.mean)


class CliffModel(WorldModel):
    """Hand-built latent model: z[0] is a position x, x' = x + a; the reward x' grows towards a cliff
    at x = 1.5 and beyond; stepping past the cliff terminates; every live state is worth Q = 10."""

    def encode(self, obs, task):
        return torch.zeros(*obs.shape[:-1], self.cfg.latent_dim)

    def next(self, z, a, task):
        return torch.cat([z[..., :1] + a[..., :1], z[..., 1:]], -1)

    def reward(self, z, a, task):
        r = z[..., :1] + a[..., :1]
        return torch.log(self.two_hot.encode(r) + 1e-30)

    def termination(self, z, task):
        return 50.0 * (z[..., :1] - 1.5)

    def pi(self, z, task, eps=None):
        a = torch.zeros(*z.shape[:-1], self.cfg.action_dim)
        return a, {"mean": a}

    def Q(self, z, a, task, **kw):
        return torch.full((*z.shape[:-1], 1), 10.0)


@pytest.mark.parametrize("termination", ["hard", "soft"])
def test_the_planner_avoids_a_tempting_termination_cliff_only_where_the_task_terminates(termination):
    cfg = _cfg([True, False])
    m = CliffModel(cfg.model)
    pcfg = PlannerConfig(
        horizon=3, iterations=6, num_samples=512, num_elites=64, num_pi_trajs=24, termination=termination
    )
    state = PlannerState.create(2, 3, 1, seed=0)
    _, info = plan_batch(
        m, torch.zeros(2, 3), torch.tensor([0, 1]), state, pcfg, torch.tensor([0.99, 0.99]), eval_mode=True
    )
    pos = info.mean[..., 0].cumsum(1)  # [B, H] positions along the planned sequence
    print("planned positions", pos)
    assert pos[0].max() <= 1.5 + 0.05  # terminating task: stops at the cliff's edge
    assert pos[0, -1] > 1.2  # ... but still collects the reward near it
    assert pos[1, -1] > 2.5  # a task that never terminates runs over it (nothing is lost there)
    # the chosen sequence's predicted return: 1 + 1.5 g + 1.5 g^2 + 10 g^3 beats falling (1 + 2 g)
    assert info.chosen_value[0] > 12.0


class HazardModel(CliffModel):
    """CliffModel with a constant predicted termination probability of 1/4 after every step."""

    def termination(self, z, task):
        return torch.full((*z.shape[:-1], 1), math.log(1 / 3))


@pytest.mark.parametrize("termination", ["hard", "soft", "off"])
def test_soft_termination_weights_each_reward_and_the_terminal_value_by_the_predicted_survival(termination):
    m = HazardModel(_cfg([True, False]).model)
    g = 0.9
    actions = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(2, 3, 1, 1)  # x = 1, 1, 1: rewards 1, 1, 1
    value = estimate_value(
        m,
        torch.zeros(2, 1, m.cfg.latent_dim),
        actions,
        torch.tensor([[0], [1]]),
        torch.full((2, 1, 1), g),
        torch.zeros(2, 1, 1),
        torch.arange(2),
        termination,
    )
    p = 0.75 if termination == "soft" else 1.0  # survival per step (hard: p = 1/4 < 1/2 never terminates)
    assert value[0].item() == pytest.approx(1 + g * p + g**2 * p**2 + 10 * g**3 * p**3, rel=1e-5)
    assert value[1].item() == pytest.approx(1 + g + g**2 + 10 * g**3, rel=1e-5)  # a task that never terminates


def test_termination_calibration_is_reported_for_terminating_tasks_only():
    from agents.diagnostics import run_diagnostics, scalars, termination_calibration

    y = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0])
    good = termination_calibration(torch.tensor([-9.0, -9.0, 9.0, 9.0, -9.0]), y)
    bad = termination_calibration(torch.tensor([9.0, -9.0, -9.0, 9.0, -9.0]), y)
    assert good["brier"] < 1e-6 and good["recall"] == 1.0 and good["false_alarm"] == 0.0
    assert bad["recall"] == 0.5 and bad["false_alarm"] == pytest.approx(1 / 3) and bad["brier"] > 0.3
    assert good["rate"] == pytest.approx(0.4)

    torch.manual_seed(0)
    agent = Agent(_cfg([True, False]))
    gen = torch.Generator().manual_seed(4)
    samples = {}
    for tid, name in enumerate(("falls", "never")):
        b = cliff_windows(64, 3, tid, gen)
        samples[name] = {
            "obs": b.obs.numpy(),
            "action": b.action.numpy(),
            "reward": b.reward.numpy(),
            "terminated": b.terminated.numpy(),
            "task": b.task.numpy(),
            "action_mask": b.action_mask.numpy(),
        }
    res = run_diagnostics(agent, samples, max_samples=64, run_audits=False)
    cal = res["tasks"]["falls"]["termination_calibration"]
    assert cal["n"] == 3 * 64 and cal["terminations"] == samples["falls"]["terminated"].sum()
    assert "termination_calibration" not in res["tasks"]["never"]
    flat = scalars(res)
    assert "diag/falls/termination_brier" in flat and "diag/never/termination_brier" not in flat


def test_held_out_windows_of_diagnose_carry_terminations_and_never_time_limits():
    """launch/diagnose.py calibrates the head on windows cut from evaluation episodes: a window that
    ends an episode by termination must say so (it said 0 everywhere), a time limit never."""
    import numpy as np

    import envs
    from agents.diagnostics import random_episodes
    from agents.diagnostics.evaluation import windows_from_episodes

    ts = envs.load_task_set("gym-invertedpendulum,cartpole-balance")
    make = lambda name, seed: envs.make_padded_env(ts, name, seed)  # noqa: E731
    falls = random_episodes(make, "gym-invertedpendulum", 0, ts.action_masks()[0], episodes=6, seed=3)
    for e in falls:  # the pole falls within a few random steps: the last step, and only it, terminates
        assert e["terminated"][-1] == 1 and e["terminated"][:-1].sum() == 0 and len(e["terminated"]) == len(e["reward"])
    windows = windows_from_episodes(falls, 2, 400, ts.action_masks()[0], np.random.default_rng(0))
    term = windows["terminated"]  # [H, B]
    assert term.shape == (2, 400) and 0 < term.sum() < 400
    assert term[0].sum() == 0  # a window never runs past its episode's end: a termination only on its last step

    class TimeLimit:  # cartpole-balance cut after 8 steps by a time limit (truncated), as a gymnasium TimeLimit does
        def __init__(self, env):
            self.env, self.t = env, 0

        def reset(self, seed=None):
            self.t = 0
            return self.env.reset(seed=seed)

        def step(self, a):
            self.t += 1
            obs, r, term, trunc, info = self.env.step(a)
            return obs, r, term, trunc or self.t >= 8, info

    cut = random_episodes(
        lambda n, s: TimeLimit(make(n, s)), "cartpole-balance", 1, ts.action_masks()[1], episodes=2, seed=0
    )
    assert all(len(e["reward"]) == 8 and e["terminated"].sum() == 0 for e in cut)
    assert windows_from_episodes(cut, 2, 50, ts.action_masks()[1], np.random.default_rng(0))["terminated"].sum() == 0
