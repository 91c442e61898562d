"""The report on synthetic results (no model): 80 tasks plot without matplotlib warnings, and
a task whose observation has no varying dim reports a null probe R² with its reason, not a number."""

import json
import warnings

import numpy as np

from agents.diagnostics import scalars, write_report
from agents.diagnostics.report import plot_calibration, plot_dynamics

REASON = "none of the 39 dims varies (std above 0.001 x its RMS value and above 1e-06, in both ...)"


def _results(n_tasks: int) -> dict:
    rng = np.random.default_rng(0)
    names = [f"mw-task-with-a-long-name-{i}" for i in range(n_tasks)]
    tasks = {}
    for name in names:
        r = {
            k: float(rng.uniform())
            for k in (
                "effective_rank",
                "effective_rank_frac",
                "participation_ratio",
                "participation_ratio_frac",
                "spread",
                "knn_overlap",
                "knn_chance",
                "probe_r2",
                "kstep_rel_error_1",
                "kstep_rel_error_last",
                "lipschitz_median",
                "reward_r2",
                "value_corr",
                "elite_action_rms_small",
                "elite_seed_floor_action_rms",
                "horizon_action_rms_h1",
                "horizon_return_shift_2h",
                "warm_iters_to_ref",
                "cold_iters_to_ref",
            )
        }
        r |= {
            "probe_dims": 12,
            "probe_r2_reason": None,
            "kstep_rel_error": rng.uniform(size=6).tolist(),
            "elite_stability": {"scales": [0.01, 0.1, 1.0], "action_rms": rng.uniform(size=3).tolist()},
            "horizon_sweep": {"horizons": [1, 3, 6], "predicted_return": rng.uniform(size=3).tolist()},
            "warm_start": {
                "iterations": [1, 2, 3],
                "quality_warm": rng.uniform(size=3).tolist(),
                "quality_cold": rng.uniform(size=3).tolist(),
            },
            "reward_pairs": rng.uniform(size=(2, 20)).tolist(),
            "value_pairs": rng.uniform(size=(2, 20)).tolist(),
        }
        tasks[name] = r
    tasks[names[0]] |= {"probe_r2": None, "probe_dims": 0, "probe_r2_reason": REASON}
    eye = np.eye(n_tasks).tolist()
    return {
        "tasks": tasks,
        "cross_task": {
            "tasks": names,
            "cka": eye,
            "separation": eye,
            "cka_offdiag_mean": 0.0,
            "separation_offdiag_min": 1.0,
        },
        "config": {"latent_dim": 64, "simnorm_group": 8, "planner": {}, "updates": 10},
        "seconds": 1.0,
    }


def test_eighty_tasks_plot_without_warnings(tmp_path):
    results = _results(80)  # an mt80 run: 80-entry legends left tight_layout no room ("Tight layout not applied")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_calibration(results, tmp_path / "calibration.png")
        plot_dynamics(results, tmp_path / "dynamics.png")
    assert not [str(w.message) for w in caught]
    assert (tmp_path / "dynamics.png").stat().st_size > 10_000


def test_a_task_without_varying_dims_reports_a_null_probe_and_why(tmp_path):
    results = _results(4)
    summary = write_report(results, tmp_path)
    first = "mw-task-with-a-long-name-0"
    saved = json.loads((tmp_path / "diagnostics.json").read_text())["tasks"][first]
    assert saved["probe_r2"] is None and saved["probe_r2_reason"] == REASON
    text = summary.read_text()
    assert f"No probe R² for {first}: {REASON}." in text
    row = next(line for line in text.splitlines() if line.startswith("| 0 |") and f" | {first} | " in line)
    assert row.split(" | ")[6] == "–"  # the probe R² column (after the # and task columns)
    flat = scalars(results)
    assert f"diag/{first}/probe_r2" not in flat and "diag/mw-task-with-a-long-name-1/probe_r2" in flat
