"""The running Q scale: per task when the model has several tasks, the old single scale otherwise."""

import torch

from agents.running_scale import RunningScale


def _quantile_spread(x: torch.Tensor) -> float:
    q = torch.quantile(x.float(), torch.tensor([0.05, 0.95]))
    return float((q[1] - q[0]).clamp(min=1.0))


def test_per_task_spread_equals_each_tasks_own_quantiles():
    g = torch.Generator().manual_seed(0)
    task = torch.tensor([0] * 50 + [2] * 7 + [3] * 1 + [0] * 13)
    scales = torch.tensor([100.0, 1.0, 10.0, 1.0])
    q = torch.randn(len(task), 1, generator=g) * scales[task].view(-1, 1)
    s = RunningScale(0.01, num_tasks=5, init="first_batch")
    s.update(q, task=task)
    for t, expected in ((0, _quantile_spread(q[task == 0])), (2, _quantile_spread(q[task == 2])), (3, 1.0)):
        assert abs(float(s.value[t]) - expected) < 1e-4 * max(1.0, expected), t
    # tasks 1 and 4 were absent: untouched, and their first batch will set their scale outright
    assert s.value[1] == 1.0 and s.value[4] == 1.0 and s.counts.tolist() == [1, 0, 1, 1, 0]
    assert s.value[0] > 50 * s.value[2] / 10  # the big task's scale does not leak into the small one
    # the second batch moves a task's scale by tau only, the first of a new task sets it
    q2 = torch.full((4, 1), 0.0)
    q2[0], q2[1] = -300.0, 300.0
    before = s.value.clone()
    s.update(q2, task=torch.tensor([0, 0, 4, 4]))
    spread0 = _quantile_spread(q2[:2])
    assert torch.isclose(s.value[0], before[0] + 0.01 * (spread0 - before[0]))
    assert s.value[4] == 1.0 and s.counts[4] == 1 and s.value[2] == before[2]
    # dividing uses each row's own task
    x = torch.ones(3, 2, 1)
    out = s(x, torch.tensor([0, 2]))
    assert torch.allclose(out[..., 0], (1 / s.value[torch.tensor([0, 2])]).expand(3, 2))


def test_one_task_is_the_global_scale():
    g = torch.Generator().manual_seed(1)
    s = RunningScale(0.1, init="first_batch")
    ref = None
    for _ in range(3):
        q = torch.randn(64, 1, generator=g) * 30
        spread = _quantile_spread(q)
        ref = spread if ref is None else ref + 0.1 * (spread - ref)
        s.update(q)
    assert abs(float(s.value) - ref) < 1e-4 * ref and s.updates == 3


def test_loads_a_single_scale_checkpoint_into_every_task():
    s = RunningScale(0.01, num_tasks=3)
    s.load_state_dict({"value": torch.tensor([42.0]), "updates": torch.tensor(7)})  # pre-per-task format
    assert s.value.tolist() == [42.0] * 3 and s.counts.tolist() == [7] * 3
    other = RunningScale(0.01, num_tasks=3)
    other.load_state_dict(s.state_dict())
    assert torch.equal(other.value, s.value) and torch.equal(other.counts, s.counts)
    try:
        RunningScale(0.01, num_tasks=2).load_state_dict(s.state_dict())
    except ValueError as e:
        assert "3 entries" in str(e)
    else:
        raise AssertionError("a 3-task scale loaded into a 2-task agent")


def test_tdmpc2_init_starts_at_one_and_every_batch_moves_it_by_tau():
    """init="one" (the default, TD-MPC2's): no batch sets the scale outright, the first one included."""
    g = torch.Generator().manual_seed(2)
    for num_tasks in (1, 3):
        s = RunningScale(0.1, num_tasks=num_tasks)
        ref = 1.0
        for _ in range(3):
            q = torch.randn(64, 1, generator=g) * 30
            s.update(q, task=torch.zeros(64, dtype=torch.long) if num_tasks > 1 else None)
            ref = ref + 0.1 * (_quantile_spread(q) - ref)
            assert abs(float(s.value[0]) - ref) < 1e-4 * ref
        assert s.value[0] < 0.5 * _quantile_spread(q)  # far from the batch's spread after 3 batches
        if num_tasks > 1:
            assert s.value[1:].tolist() == [1.0, 1.0]  # absent tasks keep 1
