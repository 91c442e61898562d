import dataclasses
import functools
import math

import pytest
import torch

from agents.config import make_agent_config
from agents.noise import counter_draw, philox4x32, row_key
from agents.planner import PlannerState, plan_batch
from agents.testing.launches import count_launches
from agents.world_model import WorldModel

M32 = 0xFFFFFFFF


@pytest.mark.parametrize(
    "counter,key,expected",
    [
        # known-answer vectors of Philox4x32-10 (Random123's kat_vectors)
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((M32,) * 4, (M32, M32), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_philox_matches_its_known_answers(counter, key, expected):
    out = philox4x32(tuple(torch.tensor([c]) for c in counter), tuple(torch.tensor([k]) for k in key))
    assert tuple(int(w) for w in torch.cat(out)) == expected


def test_a_rows_draw_depends_only_on_its_key_and_counter():
    keys = torch.tensor([row_key(7, b) for b in range(5)])
    counters = torch.tensor([0, 3, 3, 1, 0])
    normal, uniform = counter_draw(keys, counters, 1001, 17)
    assert normal.shape == (5, 1001) and uniform.shape == (5, 17)
    for b in range(5):
        n1, u1 = counter_draw(keys[b : b + 1], counters[b : b + 1], 1001, 17)
        assert torch.equal(n1[0], normal[b]) and torch.equal(u1[0], uniform[b])
    # rows with different keys, and the same row at another counter, differ
    assert not torch.allclose(normal[1], normal[2])
    assert not torch.allclose(counter_draw(keys[:1], torch.tensor([1]), 1001, 17)[0][0], normal[0])


def test_draws_look_standard_normal_and_uniform():
    keys = torch.tensor([row_key(0, b) for b in range(4)])
    normal, uniform = counter_draw(keys, torch.zeros(4, dtype=torch.long), 50_000, 50_000)
    n = normal.flatten()
    assert abs(n.mean()) < 0.01 and abs(n.std() - 1) < 0.01
    assert abs((n.abs() < 1).float().mean() - math.erf(1 / math.sqrt(2))) < 0.005  # 68.3% within 1 sigma
    assert uniform.min() > 0 and uniform.max() < 1 and abs(uniform.mean() - 0.5) < 0.005
    # consecutive values are uncorrelated, and so are two rows
    assert abs(torch.corrcoef(torch.stack([n[:-1], n[1:]]))[0, 1]) < 0.01
    assert abs(torch.corrcoef(normal[:2])[0, 1]) < 0.02


def test_planner_ops_per_call_do_not_grow_with_the_batch():
    """One pass over B rows dispatches as many ops for B = 8 as for B = 1 (the GPU launch count)."""
    cfg = make_agent_config(
        obs_dim=6,
        action_dim=4,
        episode_lengths=[500] * 2,
        model_size="tiny",
        planner=dict(horizon=3, iterations=2, num_samples=32, num_elites=4, num_pi_trajs=4),
    )
    torch.manual_seed(0)
    m = WorldModel(cfg.model).eval()
    counts = {}
    for B in (1, 8):
        pcfg = dataclasses.replace(cfg.planner, rows_per_pass=B)
        state = PlannerState.create(B, 3, 4)
        obs, task = torch.randn(B, 6), torch.arange(B) % 2
        plan_batch(m, obs, task, state, pcfg, torch.tensor([0.99, 0.99]))  # warm-up
        counts[B] = count_launches(functools.partial(plan_batch, m, obs, task, state, pcfg, torch.tensor([0.99, 0.99])))
    assert counts[8] == counts[1], counts


def test_a_selected_sub_state_shares_and_advances_its_rows_streams():
    state = PlannerState.create(4, 3, 2, seed=9)
    full_normal, _ = PlannerState.create(4, 3, 2, seed=9).draw(10, 2)
    sub = state.select([1, 3])
    normal, _ = sub.draw(10, 2)
    assert torch.equal(normal, full_normal[[1, 3]])  # the rows' own first draw
    assert state.counters.tolist() == [0, 1, 0, 1]  # the parent's streams advanced for those rows only
    again, _ = state.select([3]).draw(10, 2)
    assert not torch.equal(again[0], normal[1])  # row 3's second draw is new noise
