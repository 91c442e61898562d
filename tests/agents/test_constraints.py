"""Action bounds and rate limits in the planner (issue 19): every sequence the planner scores, its
elites, refit mean and executed action are feasible; constraints off leaves plans bitwise as before."""

import dataclasses

import numpy as np
import pytest
import torch

import agents.planner as planner
from agents.agent import _plain
from agents.config import ActionConstraints, constraints_from_plain, make_agent_config
from agents.planner import ConstraintTable, PlanConstraints, project_sequences
from agents.policy import PlanningPolicy

TOL = 1e-6
SMALL = dict(horizon=3, iterations=3, num_samples=48, num_elites=6, num_pi_trajs=6, rows_per_pass=2)
MASKS = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
# task 0: rate limit only; task 1 (2 dims): tight bounds, rate limit and a rest action; task 2: none
CONSTRAINTS = (
    ActionConstraints(max_delta=(0.2,)).resolved("task 0", 4),
    ActionConstraints(lo=(-0.3, 0.1), hi=(0.5, 0.9), max_delta=(0.1, 0.05), rest=(0.0, 0.5)).resolved("task 1", 2),
    None,
)


def _policy(constraints=CONSTRAINTS, **planner_kw):
    cfg = make_agent_config(
        obs_dim=5,
        action_dim=4,
        episode_lengths=[500] * 3,
        model_size="tiny",
        model=dict(enc_dim=32, mlp_dim=32, latent_dim=16, num_q=2, task_dim=8),
        planner={**SMALL, **planner_kw},
        constraints=constraints,
    )
    torch.manual_seed(0)
    policy = PlanningPolicy(cfg, MASKS)
    with torch.no_grad():  # non-trivial reward/value heads so the planner has preferences
        for p in list(policy.model.reward_head[-1].parameters()) + list(policy.model.qs.out.parameters()):
            p.normal_(0, 0.5)
    return policy


def _limits(task: int):
    """(lo, hi, rate, rest) as numpy [4] arrays for a task (padded dims: box, no limit)."""
    lo, hi, rate, rest = -np.ones(4), np.ones(4), np.full(4, np.inf), None
    c = CONSTRAINTS[task]
    if c is not None:
        n = len(c.lo)
        lo[:n], hi[:n], rate[:n] = c.lo, c.hi, c.max_delta
        if c.rest is not None:
            rest = np.zeros(4)
            rest[:n] = c.rest
    return lo, hi, rate, rest


def _assert_feasible(seq, task: int, ref, what: str):
    """seq [H, ..., 4]: every sequence in bounds, step 0 within rate of ref (None: bounds only), steps
    within rate of their own previous step."""
    lo, hi, rate, rest = _limits(task)
    seq = np.asarray(seq, np.float64)
    assert (seq >= lo - TOL).all() and (seq <= hi + TOL).all(), f"{what}: out of bounds for task {task}"
    ref = ref if ref is not None else rest
    if ref is not None:
        assert (np.abs(seq[0] - ref) <= rate + TOL).all(), f"{what}: step 0 breaks the rate limit from {ref}"
    assert (np.abs(np.diff(seq, axis=0)) <= rate + TOL).all(), f"{what}: breaks the rate limit within the sequence"


def test_projection_clips_each_step_relative_to_the_previous_projected_step():
    c = PlanConstraints(
        lo=torch.tensor([[-0.3, -1.0]]),
        hi=torch.tensor([[1.0, 0.25]]),
        rate=torch.tensor([[0.2, float("inf")]]),
        rest=torch.zeros(1, 2),
        has_rest=torch.tensor([True]),
    )
    a = torch.tensor([[0.9, 0.9], [0.9, -0.9], [-1.0, 0.0], [-1.0, 0.0]]).view(1, 4, 1, 2)  # [B, H, N, A]
    out = project_sequences(a, torch.zeros(1, 2), c.rate, c).view(4, 2)
    expected = torch.tensor([[0.2, 0.25], [0.4, -0.9], [0.2, 0.0], [0.0, 0.0]])
    assert torch.allclose(out, expected, atol=1e-7), out
    # no reference (episode start without a rest action): step 0 obeys the bounds only
    out = project_sequences(a, torch.zeros(1, 2), torch.full((1, 2), float("inf")), c).view(4, 2)
    assert torch.allclose(out[0], torch.tensor([0.9, 0.25])) and torch.allclose(out[1, 0], torch.tensor(0.9))


def test_nothing_the_planner_scores_keeps_or_executes_breaks_the_limits(monkeypatch):
    """Three rows of three tasks with different limits (one unconstrained, one with padded dims),
    several calls with exploration noise, an episode boundary on two rows in the middle."""
    policy = _policy()
    scored = []  # every action sequence the planner scores: [B, H, N, A]
    original = planner.estimate_value

    def recording(model, z, actions, *args):
        scored.append(actions.detach().clone())
        return original(model, z, actions, *args)

    monkeypatch.setattr(planner, "estimate_value", recording)
    task = torch.tensor([0, 1, 2])
    state = policy.new_planner_state(3, seed=5)
    prev = [None, None, None]  # what each row executed last in this episode
    gen = torch.Generator().manual_seed(0)
    for call in range(6):
        if call == 3:  # rows 0 and 1 start new episodes
            state.reset([0, 1])
            prev[0] = prev[1] = None
        scored.clear()
        action, info = policy.act(torch.randn(3, 5, generator=gen), task, state, eval_mode=(call == 5))
        # per pass of rows (rows_per_pass=2: rows 0-1, then row 2): the prior once, then each iteration's samples
        per_pass = 1 + SMALL["iterations"]
        assert len(scored) == 2 * per_pass
        for k, seqs in enumerate(scored):
            for j, b in enumerate([0, 1] if k < per_pass else [2]):
                _assert_feasible(seqs[j].numpy(), int(task[b]), prev[b], f"call {call}: scored sequences of row {b}")
        rows = [0, 1, 2]
        for b in rows:
            t = int(task[b])
            _assert_feasible(info.elite_actions[b].numpy(), t, prev[b], f"call {call}: elites of row {b}")
            _assert_feasible(info.mean[b].numpy(), t, prev[b], f"call {call}: refit mean of row {b}")
            _assert_feasible(action[b].numpy()[None], t, prev[b], f"call {call}: executed action of row {b}")
            assert (action[b][MASKS[t] == 0] == 0).all(), "a padded action dim is not 0"
            prev[b] = action[b].numpy().astype(np.float64)
        assert torch.equal(state.prev_action, action) and state.has_prev_action.all()
    # the limits bind: the unconstrained row moves by more than the rate limit somewhere
    assert scored and any((s[:, 1:] - s[:, :-1]).abs().max() > 0.5 for s in scored)


def test_warm_start_is_feasible_from_the_executed_action():
    policy = _policy(iterations=1, min_std=1e-6, max_std=1e-6, num_pi_trajs=0)  # mean = warm start
    task = torch.tensor([0, 1, 2])
    state = policy.new_planner_state(3, seed=1)
    state.prev_mean.copy_(torch.tensor([1.0, -1.0, 1.0, -1.0]).expand(3, 3, 4))  # a far, infeasible warm start
    state.has_prev.fill_(True)
    executed = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.2, 0.4, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    state.record_actions(executed)
    _, info = policy.act(torch.randn(3, 5), task, state, eval_mode=True)
    for b in range(3):
        _assert_feasible(info.mean[b].numpy(), int(task[b]), executed[b].numpy(), f"warm-started mean of row {b}")
    assert torch.allclose(info.mean[0, 0], torch.tensor([0.2, -0.2, 0.2, -0.2]), atol=1e-4)  # one rate step
    assert torch.allclose(info.mean[2, 0, :3], torch.tensor([1.0, -1.0, 1.0]), atol=1e-4)  # unconstrained row


def test_constraints_off_plans_are_those_of_the_reference_commit():
    # the reference plans were made before constraints existed, on another CPU: compared within the rounding
    # spread of CPUs and kernels (agents/testing/plan_reference.py: TOLERANCE), not bit for bit
    from agents.testing.plan_reference import differences, load_reference

    cfg, model, ref = load_reference()
    assert PlanningPolicy(cfg, model=model).constraints is None  # no constraint op on this path
    assert differences(model, cfg, ref) == []
    # the comparison can fail: a planner that refits differently (one elite fewer) is caught
    worse = dataclasses.replace(cfg, planner=dataclasses.replace(cfg.planner, num_elites=cfg.planner.num_elites - 1))
    assert differences(model, worse, ref)


def test_prior_only_acting_and_seeding_actions_are_projected():
    policy = _policy()
    task = torch.tensor([0, 1, 2])
    state = policy.new_planner_state(3, seed=2)
    prev = [None] * 3
    for step in range(5):
        a = policy.act_prior(torch.randn(3, 5) * 3, task, state, eval_mode=step % 2 == 1)
        for b in range(3):
            _assert_feasible(a[b].numpy()[None], int(task[b]), prev[b], f"prior action {step} of row {b}")
            prev[b] = a[b].numpy().astype(np.float64)
    random = torch.rand(3, 4) * 2 - 1
    feasible = policy.feasible(random, task, state)
    for b in range(3):
        _assert_feasible(feasible[b].numpy()[None], int(task[b]), prev[b], f"seeding action of row {b}")
    assert torch.equal(feasible[2], random[2])  # the unconstrained row is untouched


def test_violation_counter_catches_what_the_planner_avoids():
    table = ConstraintTable(CONSTRAINTS, 4)
    task = torch.tensor([0, 1, 2])
    prev = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    ok = torch.tensor([[0.2, -0.2, 0.1, 0.0], [0.1, 0.55, 0.0, 0.0], [1.0, -1.0, 1.0, 0.0]])
    assert not table.violations(task, ok, prev, torch.ones(3, dtype=torch.bool)).any()
    bad = ok + torch.tensor([[0.01, 0, 0, 0], [0, 0.01, 0, 0], [0, 0, 0, 0]])
    assert table.violations(task, bad, prev, torch.ones(3, dtype=torch.bool)).tolist() == [True, True, False]
    # at an episode start: task 0 has no rest action (bounds only), task 1 is measured from its rest (0, 0.5)
    start = torch.tensor([[0.9, 0.9, 0.9, 0.9], [0.2, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert table.violations(task, start, prev, torch.zeros(3, dtype=torch.bool)).tolist() == [False, True, False]
    c = CONSTRAINTS[1]
    assert c.violations(np.array([[0.0, 0.5], [0.1, 0.55], [0.3, 0.55]])) == 1  # the last step jumps by 0.2


@pytest.mark.parametrize(
    "kwargs, dims, words",
    [
        (dict(lo=(0.5,), hi=(0.2,)), 3, ["task 'x'", "lo/hi"]),
        (dict(lo=(-1.5,)), 3, ["lo/hi", "-1 <= lo"]),
        (dict(max_delta=(0.0,)), 3, ["max_delta", "> 0"]),
        (dict(max_delta=(0.2, 0.2)), 3, ["max_delta", "action_dim is 3"]),
        (dict(lo=(-0.5,), max_delta=(0.2,), rest=(-0.8,)), 3, ["rest", "inside [lo, hi]"]),
        (dict(hi=("a",)), 3, ["hi", "list of numbers"]),
    ],
)
def test_bad_constraints_are_refused_naming_task_and_field(kwargs, dims, words):
    with pytest.raises(ValueError) as err:
        ActionConstraints(**kwargs).resolved("task 'x'", dims)
    for w in words:
        assert w in str(err.value), str(err.value)


def test_agent_config_checks_constraint_entries_and_they_survive_a_checkpoint():
    with pytest.raises(ValueError, match="one per task"):
        make_agent_config(
            obs_dim=5, action_dim=4, episode_lengths=[500] * 3, model_size="tiny", constraints=CONSTRAINTS[:2]
        )
    cfg = _policy().cfg
    assert constraints_from_plain(_plain(dataclasses.asdict(cfg))["constraints"]) == cfg.constraints
    # all-None constraints are constraints off
    off = make_agent_config(
        obs_dim=5, action_dim=4, episode_lengths=[500] * 3, model_size="tiny", constraints=(None, None, None)
    )
    assert off.constraints is None
