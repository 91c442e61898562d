"""End to end on a small trained checkpoint: launch/diagnose.py writes a report with finite
values for every task and images that open; evaluation records deadline misses."""

import json
import math

import numpy as np
import pytest
import torch

envs = pytest.importorskip("envs")

from agents.agent import Agent  # noqa: E402
from agents.checkpoint import save_checkpoint  # noqa: E402
from agents.config import make_agent_config  # noqa: E402
from agents.diagnostics import (  # noqa: E402
    PlannerSetting,
    fit_on_episodes,
    log_scalars,
    random_episodes,  # noqa: E402
    run_episodes,
    scalars,
)

torch.set_num_threads(1)
# two cartpole tasks share an embodiment; pendulum and reacher (2 action dims) are two more
TASKS = "cartpole-balance,cartpole-swingup,pendulum-swingup,reacher-easy"
ALWAYS_FINITE = (
    "effective_rank",
    "participation_ratio",
    "spread",
    "knn_overlap",
    "probe_r2",
    "kstep_rel_error_1",
    "kstep_rel_error_last",
    "lipschitz_median",
    "reward_mae",
    "reward_bias",
    "value_mae",
    "value_bias",
    "elite_action_rms_small",
    "elite_seed_floor_action_rms",
    "horizon_action_rms_h1",
    "warm_iters_to_ref",
    "cold_iters_to_ref",
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ts = envs.load_task_set(TASKS)
    masks = ts.action_masks()
    # short nominal episodes (discount 0.95) so truncated evaluation episodes still calibrate values
    cfg = make_agent_config(
        obs_dim=ts.max_obs_dim,
        action_dim=ts.max_action_dim,
        episode_lengths=[100] * len(ts),
        model_size="tiny",
        planner=dict(num_samples=64, num_elites=8, num_pi_trajs=8, iterations=2),
    )
    torch.manual_seed(0)
    agent = Agent(cfg, torch.as_tensor(masks))
    env_fn = lambda name, seed: envs.make_padded_env(ts, name, seed)  # noqa: E731
    eps = {n: random_episodes(env_fn, n, i, masks[i], episodes=1, seed=i) for i, n in enumerate(ts.names)}
    fit_on_episodes(agent, eps, updates=30, batch_size=64)
    path = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(path, agent, extra={"task_set": TASKS, "tasks": list(ts.names)})
    return agent, ts, env_fn, path


def test_diagnose_writes_a_finite_report_with_images(trained, tmp_path):
    from launch.diagnose import main

    agent, ts, _, ckpt = trained
    out = tmp_path / "report"
    summary = main(
        [
            f"checkpoint={ckpt}",
            f"out={out}",
            "episodes=1",
            "max_steps=80",
            "samples=64",
            "audit_states=4",
            "settings=[h3-i2-n64-fp32,h1-i2-n64-fp32-d5]",
            "budget_ms=1000",
        ]
    )
    assert summary == out / "summary.md"
    res = json.loads((out / "diagnostics.json").read_text())
    assert list(res["tasks"]) == list(ts.names)
    for name, r in res["tasks"].items():
        for k in ALWAYS_FINITE:
            assert isinstance(r.get(k), (int, float)) and math.isfinite(r[k]), (name, k, r.get(k))
        assert len(r["kstep_rel_error"]) == 2 * agent.cfg.planner.horizon
        assert r["obs_dim"] == ts.spec(name).obs_dim
    cka = np.array(res["cross_task"]["cka"])
    assert cka.shape == (4, 4) and np.allclose(np.diag(cka), 1) and np.isfinite(cka).all()
    rows = res["latency_table"]["rows"]
    assert {(r["setting"], r["task"]) for r in rows} == {
        (s, t) for s in ("h3-i2-n64-fp32", "h1-i2-n64-fp32-d5") for t in ts.names
    }
    assert all(math.isfinite(r["latency_p99_ms"]) and 0 <= r["deadline_miss_rate"] <= 1 for r in rows)
    import matplotlib.image as mpimg

    for png in ("cka.png", "per_task.png", "calibration.png", "dynamics.png", "latency_pareto.png"):
        img = mpimg.imread(out / png)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    text = summary.read_text()
    assert "## Findings" in text and "cartpole-swingup" in text and "latency_pareto.png" in text
    # the same scalars go to metrics.jsonl (and wandb) during training
    flat = scalars(res)
    assert "diag/reacher-easy/probe_r2" in flat and "diag/mean/lipschitz_median" in flat
    log_scalars(flat, tmp_path, step=7)
    line = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert line["step"] == 7 and line["diag/cka_offdiag_mean"] == pytest.approx(res["cross_task"]["cka_offdiag_mean"])


class TickClock:
    def __init__(self, tick_ms):
        self.t, self.tick = 0.0, tick_ms / 1e3

    def __call__(self):
        self.t += self.tick
        return self.t


def test_evaluation_deadline_with_injected_clock_and_masked_actions(trained):
    agent, ts, env_fn, _ = trained
    tid = ts.index("pendulum-swingup")  # 1 real action dim of 2
    iters = {}
    for budget in (None, 2.0, 1.0):
        setting = PlannerSetting(f"d{budget}", iterations=4, deadline_ms=budget)
        (ep,) = run_episodes(agent, env_fn, "pendulum-swingup", tid, setting=setting, max_steps=5, clock=TickClock(1.0))
        assert ep["action"].shape == (5, 2) and np.all(ep["action"][:, 1] == 0) and np.abs(ep["action"]).max() <= 1
        iters[budget] = set(ep["iterations"].tolist())
        # the clock is read at the start, after each iteration when there is a deadline, and at the end
        expected = 1.0 + (max(iters[budget]) if budget is not None else 0)
        assert np.allclose(ep["latency_ms"], expected)
    assert iters == {None: {4}, 2.0: {2}, 1.0: {1}}
