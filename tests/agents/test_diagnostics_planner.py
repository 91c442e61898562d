"""Planner audits on hand-built models with known answers, and the deadline option with an
injected clock (no wall-clock assertions)."""

import dataclasses

import numpy as np
import pytest
import torch

from agents.config import PlannerConfig, make_agent_config
from agents.diagnostics import (
    PlannerSetting,
    elite_stability,
    horizon_sweep,
    latency_summary,
    parse_setting,
    state_value,
    tradeoff,
    warm_start_ablation,
)
from agents.planner import PlannerState, plan_batch
from agents.world_model import WorldModel

torch.set_num_threads(1)
SMALL = dict(horizon=3, iterations=6, num_samples=128, num_elites=16, num_pi_trajs=8)


class ConstantRewardModel(WorldModel):
    """Reward 1 every step whatever the action; terminal value `q` everywhere. With
    q = 1/(1-gamma) the terminal value is honest: every horizon predicts the same return."""

    def __init__(self, cfg, q):
        super().__init__(cfg)
        self.q = q

    def reward(self, z, a, task):
        r = torch.ones(*z.shape[:-1], 1)
        return torch.log(self.two_hot.encode(r) + 1e-30)

    def Q(self, z, a, task, **kw):
        return torch.full((*z.shape[:-1], 1), self.q)


class TargetModel(WorldModel):
    """Reward -||a - a*||^2 for one fixed target action a* at every step; zero terminal value."""

    def __init__(self, cfg, target):
        super().__init__(cfg)
        self.target = target

    def encode(self, obs, task):
        return torch.zeros(*obs.shape[:-1], self.cfg.latent_dim)

    def next(self, z, a, task):
        return z

    def reward(self, z, a, task):
        r = -((a - self.target) ** 2).sum(-1, keepdim=True)
        return torch.log(self.two_hot.encode(r) + 1e-30)

    def pi(self, z, task, eps=None):
        a = torch.zeros(*z.shape[:-1], self.cfg.action_dim)
        return a, {"mean": a}

    def Q(self, z, a, task, **kw):
        return torch.zeros(*z.shape[:-1], 1)


def _tiny(num_tasks=2, action_dim=4, masks=None, **planner):
    cfg = make_agent_config(
        obs_dim=6,
        action_dim=action_dim,
        episode_lengths=[100] * num_tasks,
        model_size="tiny",
        planner={**SMALL, **planner},
    )
    torch.manual_seed(0)
    m = WorldModel(cfg.model, masks)
    with torch.no_grad():  # non-trivial heads (they start zeroed) so elites are not ties
        for p in list(m.reward_head[-1].parameters()) + list(m.qs.out.parameters()):
            p.normal_(0, 0.5)
    return m.eval(), cfg


def test_horizon_sweep_honest_vs_biased_terminal_value():
    cfg = make_agent_config(obs_dim=3, action_dim=2, episode_lengths=[100], model_size="tiny", planner=SMALL)
    gamma = 0.9
    disc = torch.tensor([gamma])
    obs, task = torch.randn(4, 3), torch.zeros(4, dtype=torch.long)
    honest = horizon_sweep(ConstantRewardModel(cfg.model, 1 / (1 - gamma)).eval(), obs, task, disc, cfg.planner)
    assert honest["horizons"] == [1, 2, 3, 4, 5, 6]
    assert np.allclose(honest["predicted_return"], 10.0, atol=1e-3)
    assert np.allclose(honest["return_shift_vs_default"], 0.0, atol=1e-3)
    assert honest["value_estimate"] == pytest.approx(10.0)
    # zero terminal value: the predicted return is the truncated sum (1 - gamma^h) / (1 - gamma)
    biased = horizon_sweep(ConstantRewardModel(cfg.model, 0.0).eval(), obs, task, disc, cfg.planner)
    expect = [(1 - gamma**h) / (1 - gamma) for h in range(1, 7)]
    assert np.allclose(biased["predicted_return"], expect, atol=1e-3)
    assert biased["return_shift_vs_default"][0] == pytest.approx(expect[0] - expect[2], abs=1e-3)


def test_horizon_sweep_default_horizon_reproduces_the_plan():
    m, cfg = _tiny()
    obs, task = torch.randn(5, 6), torch.tensor([0, 1, 0, 1, 0])
    hs = horizon_sweep(m, obs, task, torch.tensor([0.95, 0.95]), cfg.planner, horizons=(1, 3, 5))
    assert hs["action_rms_vs_default"][1] == 0.0  # same horizon, same seed: the same plan
    assert hs["seed_floor_action_rms"] > 0


def test_elite_stability_zero_noise_is_identical_and_noise_moves_the_plan():
    m, cfg = _tiny()
    obs, task = torch.randn(6, 6), torch.tensor([0, 1, 0, 1, 0, 1])
    es = elite_stability(m, obs, task, torch.tensor([0.95, 0.95]), cfg.planner, scales=(0.0, 3.0))
    assert es["action_rms"][0] == 0.0 and es["elite_jaccard"][0] == 1.0 and es["mean_rms"][0] == 0.0
    assert es["action_rms"][1] > 0 and es["elite_jaccard"][1] < 1.0
    assert es["seed_floor"]["action_rms"] > 0


def test_warm_start_reaches_the_cold_quality_in_fewer_iterations():
    cfg = make_agent_config(obs_dim=3, action_dim=2, episode_lengths=[100], model_size="tiny", planner=SMALL)
    m = TargetModel(cfg.model, torch.tensor([0.6, -0.4])).eval()
    obs, task = torch.randn(8, 3), torch.zeros(8, dtype=torch.long)
    ws = warm_start_ablation(m, obs, obs, task, torch.tensor([0.95]), cfg.planner, max_iterations=6)
    assert ws["iterations"] == [1, 2, 3, 4, 5, 6]
    # the shifted mean starts near the optimum; the std restarts wide, so the gain fades with iterations
    assert ws["quality_warm"][0] > ws["quality_cold"][0]
    assert ws["iters_to_ref_warm"] <= ws["iters_to_ref_cold"] <= 6
    # a looser target (30% of the way) is reached by most warm rows at once, by most cold ones later
    loose = warm_start_ablation(m, obs, obs, task, torch.tensor([0.95]), cfg.planner, max_iterations=6, rel_tol=0.7)
    assert loose["iters_to_ref_warm"] < 1.5 <= loose["iters_to_ref_cold"]


def test_state_value_is_the_terminal_value():
    cfg = make_agent_config(obs_dim=3, action_dim=2, episode_lengths=[100], model_size="tiny")
    m = ConstantRewardModel(cfg.model, 7.0).eval()
    assert torch.allclose(state_value(m, torch.randn(5, 3), torch.zeros(5, dtype=torch.long)), torch.full((5,), 7.0))


class TickClock:
    """A clock that advances `tick_ms` every time it is read."""

    def __init__(self, tick_ms):
        self.t, self.tick = 0.0, tick_ms / 1e3

    def __call__(self):
        self.t += self.tick
        return self.t


def test_deadline_budget_bounds_iterations_and_actions_stay_valid_and_masked():
    masks = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.float32)
    m, cfg = _tiny(masks=masks, iterations=8)
    obs, task = torch.randn(4, 6), torch.tensor([0, 1, 1, 0])
    iters = {}
    for budget in (None, 6.0, 3.0, 1.0, 0.0):
        pcfg = dataclasses.replace(cfg.planner, deadline_ms=budget, rows_per_pass=4)  # one pass: whole budget
        state = PlannerState.create(4, pcfg.horizon, 4, seed=0)
        for eval_mode in (True, False):
            action, info = plan_batch(
                m, obs, task, state, pcfg, torch.tensor([0.95, 0.95]), eval_mode=eval_mode, clock=TickClock(1.0)
            )
            assert action.shape == (4, 4) and torch.isfinite(action).all()
            assert action.abs().max() <= 1.0
            assert torch.all(action[masks[task] == 0] == 0)  # padded dims exactly zero
        iters[budget] = info.iterations
    # each read of the clock advances 1 ms; the check after iteration i reads i ms
    assert iters == {None: 8, 6.0: 6, 3.0: 3, 1.0: 1, 0.0: 1}


def test_setting_parsing_and_planner_config():
    s = parse_setting("h5-i2-n64-bf16-d12.5")
    assert (s.horizon, s.iterations, s.num_samples, s.precision, s.deadline_ms) == (5, 2, 64, "bf16", 12.5)
    pc = s.planner_config(PlannerConfig())
    assert (pc.horizon, pc.iterations, pc.num_samples, pc.deadline_ms) == (5, 2, 64, 12.5)
    assert pc.num_elites <= 8 and pc.num_pi_trajs < 64
    assert s.autocast_dtype(None) is torch.bfloat16
    with pytest.raises(ValueError, match="bad planner setting"):
        parse_setting("h3-x9")


def test_latency_summary_and_tradeoff_from_given_latencies():
    lat = np.array([1.0] * 90 + [10.0] * 10)
    s = latency_summary(lat, budget_ms=5.0)
    assert s["latency_p50_ms"] == 1.0 and s["deadline_miss_rate"] == pytest.approx(0.1)
    rows = [
        dict(setting="a", task="x", return_mean=100.0, latency_p50_ms=2.0, deadline_miss_rate=0.0),
        dict(setting="a", task="y", return_mean=50.0, latency_p50_ms=2.0, deadline_miss_rate=0.0),
        dict(setting="b", task="x", return_mean=108.0, latency_p50_ms=4.0, deadline_miss_rate=0.5),
        dict(setting="b", task="y", return_mean=54.0, latency_p50_ms=4.0, deadline_miss_rate=0.1),
    ]
    t = {r["setting"]: r for r in tradeoff(rows)}
    assert t["a"]["return_ratio"] == pytest.approx(1.0)
    assert t["b"]["return_ratio"] == pytest.approx(1.08) and t["b"]["latency_ratio"] == pytest.approx(2.0)
    assert t["b"]["deadline_miss_rate"] == pytest.approx(0.3)


def test_setting_default_keeps_agent_planner():
    pc = PlannerSetting("default").planner_config(PlannerConfig(num_samples=64, num_elites=8, num_pi_trajs=8))
    assert (pc.num_samples, pc.num_elites, pc.num_pi_trajs, pc.deadline_ms) == (64, 8, 8, None)


def test_split_by_task_keeps_each_tasks_rows():
    from agents.diagnostics import split_by_task

    H, B = 2, 5
    task = np.array([1, 0, 1, 2, 1])
    sample = {
        "obs": np.arange(3 * B * 2).reshape(H + 1, B, 2),
        "action": np.zeros((H, B, 1)),
        "reward": np.tile(task, (H, 1)).astype(float),
        "terminated": np.zeros((H, B)),
        "task": task,
        "action_mask": np.ones((B, 1)),
    }
    parts = split_by_task(sample, ["a", "b", "c", "d"])
    assert list(parts) == ["a", "b", "c"]  # "d" has no rows
    assert parts["b"]["obs"].shape == (H + 1, 3, 2) and np.all(parts["b"]["reward"] == 1)
    assert np.all(parts["b"]["task"] == 1) and parts["c"]["action_mask"].shape == (1, 1)
