import dataclasses

import pytest
import torch

from agents.config import PlannerConfig, make_agent_config
from agents.planner import PlannerState, plan_batch
from agents.world_model import WorldModel

SMALL = dict(horizon=3, iterations=3, num_samples=64, num_elites=8, num_pi_trajs=8)


def _model(num_tasks=2, action_dim=4, masks=None):
    cfg = make_agent_config(
        obs_dim=6, action_dim=action_dim, episode_lengths=[500] * num_tasks, model_size="tiny", planner=SMALL
    )
    torch.manual_seed(0)
    m = WorldModel(cfg.model, masks)
    # non-trivial reward/value heads (they start zeroed) so elites are not ties
    with torch.no_grad():
        for p in list(m.reward_head[-1].parameters()) + list(m.qs.out.parameters()):
            p.normal_(0, 0.5)
    return m.eval(), cfg


class PeakedModel(WorldModel):
    """Hand-built latent model: the latent counts steps; reward -||a - a*_t||^2 peaks at a known sequence."""

    def __init__(self, cfg, target):
        super().__init__(cfg)
        self.target = target  # [H, A]

    def encode(self, obs, task):
        return torch.zeros(*obs.shape[:-1], self.cfg.latent_dim)

    def next(self, z, a, task):
        return z + 1

    def reward(self, z, a, task):
        t = z[..., :1].long().clamp(max=len(self.target) - 1)
        r = -((a - self.target[t.squeeze(-1)]) ** 2).sum(-1, keepdim=True)
        return torch.log(self.two_hot.encode(r) + 1e-30)

    def pi(self, z, task, eps=None):
        a = torch.zeros(*z.shape[:-1], self.cfg.action_dim)
        return a, {"mean": a}

    def Q(self, z, a, task, **kw):
        return torch.zeros(*z.shape[:-1], 1)


def test_planner_finds_the_optimum_of_a_hand_built_model():
    cfg = make_agent_config(obs_dim=3, action_dim=2, episode_lengths=[500], model_size="tiny")
    target = torch.tensor([[0.5, -0.3], [-0.7, 0.2], [0.1, 0.9]])
    m = PeakedModel(cfg.model, target)
    pcfg = PlannerConfig(horizon=3, iterations=6, num_samples=512, num_elites=64, num_pi_trajs=24)
    state = PlannerState.create(4, 3, 2, seed=0)
    action, info = plan_batch(
        m, torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), state, pcfg, torch.tensor([0.99]), eval_mode=True
    )
    assert torch.allclose(info.mean, target.expand(4, 3, 2), atol=0.1), info.mean
    assert torch.allclose(action, target[0].expand(4, 2), atol=0.15), action
    # a random plan would be far off
    assert (info.chosen_value > -0.1).all()


def _spy_on_actions(model):
    seen = []
    orig = model.reward

    def spy(z, a, task):
        seen.append(a.detach().clone())
        return orig(z, a, task)

    model.reward = spy
    return seen


def test_padded_action_dims_are_zero_everywhere():
    masks = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    m, cfg = _model(masks=masks)
    cfg = dataclasses.replace(cfg, planner=dataclasses.replace(cfg.planner, rows_per_pass=3))  # spy sees all rows
    seen = _spy_on_actions(m)
    task = torch.tensor([1, 1, 0])
    state = PlannerState.create(3, 3, 4, seed=1)
    state.prev_mean.fill_(0.7)  # a warm start that would leak into padded dims if unmasked
    state.has_prev.fill_(True)
    for eval_mode in (False, True):
        action, info = plan_batch(
            m, torch.randn(3, 6), task, state, cfg.planner, torch.tensor([0.99, 0.99]), eval_mode=eval_mode
        )
        assert (action[:2, 2:] == 0).all() and (action[2, 2:] != 0).any()
        assert (info.mean[:2, :, 2:] == 0).all() and (info.std[:2, :, 2:] == 0).all()
        assert (info.elite_actions[:2, :, :, 2:] == 0).all()
    assert seen, "planner never scored any action sequence"
    for a in seen:  # every sampled sequence the model scored ([B, N, A])
        assert (a[:2, ..., 2:] == 0).all()
        assert (a[2, ..., 2:] != 0).any()


def test_warm_start_shifts_the_mean_per_row_and_resets_at_episode_start():
    m, cfg = _model(num_tasks=1)
    # near-zero std and no policy samples: the refit mean equals the initial (warm-start) mean
    pcfg = dataclasses.replace(cfg.planner, iterations=1, min_std=1e-6, max_std=1e-6, num_pi_trajs=0)
    state = PlannerState.create(3, 3, 4, seed=0)
    prev = torch.rand(3, 3, 4) * 1.6 - 0.8
    state.prev_mean.copy_(prev)
    state.has_prev[:] = torch.tensor([True, False, True])
    state.reset([2])  # row 2 starts a new episode
    _, info = plan_batch(m, torch.randn(3, 6), torch.zeros(3, dtype=torch.long), state, pcfg, torch.tensor([0.99]))
    assert torch.allclose(info.mean[0, :-1], prev[0, 1:], atol=1e-4)
    assert torch.allclose(info.mean[0, -1], torch.zeros(4), atol=1e-4)
    assert torch.allclose(info.mean[1], torch.zeros(3, 4), atol=1e-4)
    assert torch.allclose(info.mean[2], torch.zeros(3, 4), atol=1e-4)
    # the new mean is kept for the next call
    assert torch.equal(state.prev_mean, info.mean) and state.has_prev.all()


def test_a_cloned_state_plans_what_the_original_would_and_leaves_it_alone():
    m, cfg = _model()
    obs, task, disc = torch.randn(3, 6), torch.tensor([0, 1, 0]), torch.tensor([0.99, 0.95])
    state = PlannerState.create(3, 3, 4, seed=5)
    plan_batch(m, obs, task, state, cfg.planner, disc)  # a warm start, advanced streams and head generator
    before = (state.prev_mean.clone(), state.counters.clone(), state.head_generator.get_state(), state.calls)
    copy = state.clone()
    a_copy, i_copy = plan_batch(m, obs, task, copy, cfg.planner, disc)
    assert torch.equal(state.prev_mean, before[0]) and torch.equal(state.counters, before[1])
    assert torch.equal(state.head_generator.get_state(), before[2]) and state.calls == before[3]
    a, info = plan_batch(m, obs, task, state, cfg.planner, disc)
    assert torch.equal(a, a_copy) and torch.equal(info.mean, i_copy.mean)


@pytest.mark.parametrize("rows_per_pass", [5, 2])
def test_a_batch_gives_each_row_what_it_gets_alone(rows_per_pass):
    m, cfg = _model()
    obs, task = torch.randn(5, 6), torch.tensor([0, 1, 1, 0, 1])
    disc = torch.tensor([0.99, 0.95])
    joint = dataclasses.replace(cfg.planner, rows_per_pass=rows_per_pass)  # rows share passes
    for eval_mode in (False, True):
        batch_state = PlannerState.create(5, 3, 4, seed=3)
        batch_action, batch_info = plan_batch(m, obs, task, batch_state, joint, disc, eval_mode=eval_mode)
        for b in range(5):
            alone = PlannerState.create(1, 3, 4, seed=3, row_ids=[b])
            a, info = plan_batch(m, obs[b : b + 1], task[b : b + 1], alone, cfg.planner, disc, eval_mode=eval_mode)
            assert torch.allclose(a[0], batch_action[b], atol=1e-4)
            assert torch.allclose(info.mean[0], batch_info.mean[b], atol=1e-3)  # batched matmuls round differently
    # and different seeds give different exploration
    other = PlannerState.create(5, 3, 4, seed=4)
    a2, _ = plan_batch(m, obs, task, other, cfg.planner, disc)
    assert not torch.allclose(a2, batch_action)


def test_deadline_with_an_injected_clock_cuts_iterations_and_keeps_actions_valid():
    masks = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    m, cfg = _model(masks=masks)
    ticks = {"t": 0.0}

    def clock():  # every reading advances 10 ms
        ticks["t"] += 0.010
        return ticks["t"]

    done = {}
    for budget in (None, 35.0, 15.0, 0.0):
        pcfg = dataclasses.replace(cfg.planner, iterations=6, deadline_ms=budget, rows_per_pass=2)
        state = PlannerState.create(2, 3, 4, seed=0)
        action, info = plan_batch(
            m, torch.randn(2, 6), torch.tensor([0, 1]), state, pcfg, torch.tensor([0.99, 0.99]), clock=clock
        )
        done[budget] = info.iterations
        assert action.abs().max() <= 1 and torch.isfinite(action).all()
        assert (action[1, 1:] == 0).all()
    assert done[None] == 6
    assert done[None] > done[35.0] > done[15.0] >= done[0.0] == 1
    # split into one pass per row, each pass gets its share of the budget: no row is starved
    ticks["t"] = 0.0
    pcfg = dataclasses.replace(cfg.planner, iterations=6, deadline_ms=70.0, rows_per_pass=1)
    _, info = plan_batch(
        m,
        torch.randn(2, 6),
        torch.tensor([0, 1]),
        PlannerState.create(2, 3, 4),
        pcfg,
        torch.tensor([0.99, 0.99]),
        clock=clock,
    )
    assert info.iterations >= 2


def test_large_action_spaces_get_more_iterations():
    m, cfg = _model(num_tasks=1, action_dim=21)
    state = PlannerState.create(1, 3, 21)
    _, info = plan_batch(
        m, torch.randn(1, 6), torch.zeros(1, dtype=torch.long), state, cfg.planner, torch.tensor([0.99])
    )
    assert info.iterations == cfg.planner.iterations + 2


def test_state_of_the_wrong_shape_is_refused():
    m, cfg = _model()
    with pytest.raises(ValueError, match="planner state holds 2 rows"):
        plan_batch(
            m,
            torch.randn(3, 6),
            torch.zeros(3, dtype=torch.long),
            PlannerState.create(2, 3, 4),
            cfg.planner,
            torch.tensor([0.99, 0.99]),
        )


@pytest.mark.compile  # minutes of inductor compilation: ./scripts/test.sh -m compile tests/agents
def test_compiled_planning_gives_the_eager_actions():
    """torch.compile (inductor) of the MPPI iteration: same elites and actions as eager for the same
    seed; values agree to 1e-4 and actions to 1e-4 (fused kernels round differently). Compiling
    takes 0.5-3 min on a loaded 2-core CPU (cold cache), hence slow."""
    m, cfg = _model()
    obs, task, disc = torch.randn(2, 6), torch.tensor([0, 1]), torch.tensor([0.99, 0.95])
    out = {}
    for mode in ("off", "reduce-overhead"):  # reduce-overhead is plain compile on CPU
        pcfg = dataclasses.replace(cfg.planner, compile=mode, rows_per_pass=2, horizon=2)
        state = PlannerState.create(2, 2, 4, seed=5)
        out[mode] = [plan_batch(m, obs, task, state, pcfg, disc) for _ in range(2)]  # 2nd call: warm start
    for (a_e, i_e), (a_c, i_c) in zip(out["off"], out["reduce-overhead"], strict=False):
        assert torch.equal(i_e.elite_index.sort(1).values, i_c.elite_index.sort(1).values)
        assert torch.allclose(i_e.elite_value, i_c.elite_value, atol=1e-4)
        assert torch.allclose(a_e, a_c, atol=1e-4), (a_e, a_c)
        assert torch.allclose(i_e.mean, i_c.mean, atol=1e-4)


def test_an_unknown_compile_mode_is_refused():
    with pytest.raises(ValueError, match="compile must be one of"):
        PlannerConfig(compile="max")
