"""Per-task latent-geometry diagnostics, planner audits and the latency/return table.

- geometry: effective rank / participation ratio (SimNorm-corrected), spread, CKA, kNN
  overlap, linear-probe R^2 (over the observation dims that vary);
- dynamics: k-step latent error, local Lipschitz constant, reward/value/termination calibration;
- audits: elite stability, terminal-value bias (horizon sweep), warm-start ablation;
- evaluation: real episodes with per-step latency and the latency/return table;
- run: `run_diagnostics(agent, samples_by_task, ...)`, `scalars`, `log_scalars`;
- report: `write_report(results, out_dir)` (JSON + PNG + summary.md).
"""

from agents.diagnostics.audits import elite_stability, horizon_sweep, plan_quality, state_value, warm_start_ablation
from agents.diagnostics.dynamics import (
    calibration,
    discounted_returns,
    kstep_latent_error,
    local_lipschitz,
    termination_calibration,
    untruncated_steps,
)
from agents.diagnostics.evaluation import (
    PlannerSetting,
    fit_on_episodes,
    format_table,
    latency_return_table,
    latency_summary,
    parse_setting,
    random_episodes,
    run_episodes,
    tradeoff,
    windows_from_episodes,
)
from agents.diagnostics.geometry import (
    attainable_dim,
    centroid_separation,
    covariance_spectrum,
    effective_rank,
    knn_overlap,
    latent_spread,
    linear_cka,
    linear_probe,
    linear_probe_r2,
    numerical_rank,
    participation_ratio,
    simplex_tangent,
    varying_dims,
)
from agents.diagnostics.report import findings, write_report
from agents.diagnostics.run import cross_task, log_scalars, run_diagnostics, scalars, split_by_task, task_metrics

__all__ = [
    "attainable_dim",
    "calibration",
    "centroid_separation",
    "covariance_spectrum",
    "cross_task",
    "discounted_returns",
    "effective_rank",
    "elite_stability",
    "findings",
    "fit_on_episodes",
    "format_table",
    "horizon_sweep",
    "knn_overlap",
    "kstep_latent_error",
    "latency_return_table",
    "latency_summary",
    "latent_spread",
    "linear_cka",
    "linear_probe",
    "linear_probe_r2",
    "local_lipschitz",
    "log_scalars",
    "numerical_rank",
    "parse_setting",
    "participation_ratio",
    "plan_quality",
    "PlannerSetting",
    "random_episodes",
    "run_diagnostics",
    "run_episodes",
    "scalars",
    "simplex_tangent",
    "split_by_task",
    "termination_calibration",
    "state_value",
    "task_metrics",
    "tradeoff",
    "untruncated_steps",
    "varying_dims",
    "warm_start_ablation",
    "windows_from_episodes",
    "write_report",
]
