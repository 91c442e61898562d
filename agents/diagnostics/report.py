"""Write diagnostics results to a run directory: diagnostics.json, PNG plots and summary.md.

Plots (matplotlib, Agg backend): cka.png (cross-task CKA and centroid separation),
per_task.png (bar per metric), calibration.png (predicted vs realised reward and value),
dynamics.png (k-step error, horizon sweep, warm vs cold), latency_pareto.png (when a
latency/return table is present).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from agents.diagnostics.geometry import PROBE_VARY_ATOL, PROBE_VARY_RTOL

BARS = [
    ("effective_rank_frac", "eff. rank / attainable"),
    ("participation_ratio_frac", "PR / attainable"),
    ("knn_overlap", "kNN overlap obs-latent"),
    ("probe_r2", "probe R² (own obs)"),
    ("kstep_rel_error_1", "1-step rel. latent error"),
    ("kstep_rel_error_last", "2H-step rel. latent error"),
    ("lipschitz_median", "Lipschitz (median)"),
    ("reward_r2", "reward R²"),
    ("value_corr", "value corr."),
    ("elite_action_rms_small", "action change, smallest noise"),
    ("horizon_action_rms_h1", "action change, H=1"),
    ("warm_iters_to_ref", "warm iters to ref"),
]


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items() if k != "episode_data"}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None  # strict JSON has no NaN/inf
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# more per-task legend entries than this cover the axes (and leave tight_layout no room): drop them
MAX_LEGEND_TASKS = 12
MAX_ANNOTATED_TASKS = 16  # cross-task matrices print their values up to this many tasks


def _task_label(name: str, n_tasks: int) -> str | None:
    return name if n_tasks <= MAX_LEGEND_TASKS else None


def _legend(ax) -> None:
    """A legend of the labelled artists, if any (matplotlib warns on an empty one)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)


def _fmt(v, nd=3) -> str:
    return f"{v:.{nd}f}" if isinstance(v, (int, float)) and math.isfinite(v) else "–"


def plot_cka(results: dict, path: Path) -> None:
    plt = _plt()
    ct = results["cross_task"]
    names = ct["tasks"]
    n = len(names)
    # a value in every cell only while it is readable: 80 tasks made 12800 labels on a 92-inch figure
    annotate = n <= MAX_ANNOTATED_TASKS
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.1 * n, 2 + 0.5 * n) if annotate else (4 + 0.24 * n, 2 + 0.11 * n))
    for ax, key, title, cmap in (
        (axes[0], "cka", "cross-task CKA (1 = same geometry)", "viridis"),
        (axes[1], "separation", "centroid separation / spread", "magma"),
    ):
        mat = np.asarray(ct[key], dtype=float)
        im = ax.imshow(mat, cmap=cmap, vmin=0, vmax=1 if key == "cka" else None)
        ax.set_xticks(
            range(n),
            names,
            rotation=45 if annotate else 90,
            ha="right" if annotate else "center",
            fontsize=7 if annotate else 5,
        )
        ax.set_yticks(range(n), names, fontsize=7 if annotate else 5)
        for i in range(n if annotate else 0):
            for j in range(n):
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=6, color="w")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_NAMED_TICKS = 24  # up to this many tasks, each bar is labelled with its task's name


def plot_per_task(results: dict, path: Path) -> None:
    plt = _plt()
    tasks = results["tasks"]
    names = list(tasks)
    keys = [(k, t) for k, t in BARS if any(isinstance(tasks[n].get(k), (int, float)) for n in names)]
    cols = 4
    rows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, (k, title) in zip(axes.flat, keys, strict=False):
        vals = [tasks[n].get(k, float("nan")) for n in names]
        ax.bar(range(len(names)), [v if v is not None else float("nan") for v in vals], color="tab:blue")
        if k == "knn_overlap":
            ax.plot(range(len(names)), [tasks[n]["knn_chance"] for n in names], "k_", ms=14, label="chance")
        if k == "elite_action_rms_small":
            ax.plot(
                range(len(names)),
                [tasks[n].get("elite_seed_floor_action_rms", np.nan) for n in names],
                "r_",
                ms=14,
                label="seed floor",
            )
        if len(names) <= _NAMED_TICKS:
            ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=6)
        else:  # 80 rotated names in 3 inches cannot be read (and take seconds per panel to draw)
            ax.set_xticks(range(0, len(names), 10))
            ax.set_xlabel("task # (summary.md's table)", fontsize=6)
        ax.set_title(title, fontsize=8)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_calibration(results: dict, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    n_tasks = len(results["tasks"])
    for ax, key, title in (
        (axes[0], "reward_pairs", "reward: predicted vs realised"),
        (axes[1], "value_pairs", "value V(z_t) vs discounted return-to-go"),
    ):
        lo, hi = float("inf"), float("-inf")
        for name, r in results["tasks"].items():
            if key in r:
                p, y = np.asarray(r[key][0]), np.asarray(r[key][1])
                ax.scatter(p, y, s=6, alpha=0.6, label=_task_label(name, n_tasks))
                if p.size:
                    lo, hi = min(lo, p.min(), y.min()), max(hi, p.max(), y.max())
        if math.isfinite(lo):
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="perfect")
            _legend(ax)
        else:
            ax.text(0.5, 0.5, "no episodes given", ha="center", transform=ax.transAxes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("realised")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_dynamics(results: dict, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    n_tasks = len(results["tasks"])
    for name, r in results["tasks"].items():
        label = _task_label(name, n_tasks)
        rel = r["kstep_rel_error"]
        axes[0].plot(range(1, len(rel) + 1), rel, marker="o", ms=3, label=label)
        if "elite_stability" in r:
            es = r["elite_stability"]
            axes[1].plot(es["scales"], es["action_rms"], marker="o", ms=3, label=label)
            hs = r["horizon_sweep"]
            axes[2].plot(hs["horizons"], hs["predicted_return"], marker="o", ms=3, label=label)
            ws = r["warm_start"]
            (line,) = axes[3].plot(
                ws["iterations"], ws["quality_warm"], marker="o", ms=3, label=label and f"{label} warm"
            )
            axes[3].plot(ws["iterations"], ws["quality_cold"], ls="--", color=line.get_color())
    axes[0].set(xlabel="k", ylabel="relative latent error", title="k-step prediction vs encoder")
    axes[1].set(
        xscale="log", xlabel="obs noise (x per-dim std)", ylabel="first-action RMS change", title="elite stability"
    )
    axes[2].set(xlabel="planning horizon", ylabel="predicted return", title="terminal-value bias")
    axes[3].set(xlabel="MPPI iterations", ylabel="plan quality", title="warm (solid) vs cold (dashed)")
    for ax in axes:
        _legend(ax)
        if n_tasks > MAX_LEGEND_TASKS:
            ax.set_title(f"{ax.get_title()} ({n_tasks} tasks)")
        ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency_pareto(table: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    rows = table["rows"]
    for s in dict.fromkeys(r["setting"] for r in rows):
        rs = [r for r in rows if r["setting"] == s]
        sc = ax.scatter([r["latency_p50_ms"] for r in rs], [r["return_mean"] for r in rs], s=12, alpha=0.35)
        ax.errorbar(
            np.mean([r["latency_p50_ms"] for r in rs]),
            np.mean([r["return_mean"] for r in rs]),
            xerr=[[0.0], [float(np.mean([r["latency_p99_ms"] - r["latency_p50_ms"] for r in rs]))]],
            fmt="o",
            ms=8,
            color=np.asarray(sc.get_facecolor())[0][:3],  # (an [N, 4] RGBA array)
            label=s,
            capsize=3,
        )
    if table.get("budget_ms"):
        ax.axvline(table["budget_ms"], color="r", ls="--", lw=0.8, label="control budget")
    ax.set(
        xlabel="planning latency p50 ms (bar to p99)",
        ylabel="episode return",
        title="latency / return (big dot: mean over tasks)",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def findings(results: dict) -> list[str]:
    """One plain sentence per measured finding (numbers included)."""
    out = []
    tasks = results.get("tasks", {})
    ct = results.get("cross_task", {})
    if len(ct.get("tasks", [])) > 1:
        out.append(
            f"Shared latent: mean cross-task CKA is {_fmt(ct['cka_offdiag_mean'], 2)} (1 = the task "
            f"embedding leaves the geometry unchanged) and the closest two tasks' latent centroids are "
            f"{_fmt(ct['separation_offdiag_min'], 2)} spreads apart."
        )
    if tasks:

        def rng(k, nd=2):
            vals = {n: r[k] for n, r in tasks.items() if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])}
            if not vals:
                return None
            lo, hi = min(vals, key=lambda n: vals[n]), max(vals, key=lambda n: vals[n])
            return f"{_fmt(vals[lo], nd)} ({lo}) to {_fmt(vals[hi], nd)} ({hi})"

        s = rng("effective_rank")
        if s:
            cfg = results.get("config", {})
            cap = (
                cfg["latent_dim"] // cfg["simnorm_group"] * (cfg["simnorm_group"] - 1)
                if "latent_dim" in cfg and "simnorm_group" in cfg
                else "?"
            )
            out.append(
                f"Latent effective rank per task ranges from {s}, out of an attainable {cap} "
                f"(SimNorm-corrected); participation ratio {rng('participation_ratio')}."
            )
        s = rng("probe_r2")
        if s:
            out.append(
                f"Information kept: held-out linear-probe R² of each task's own observation (over the "
                f"dims that vary) ranges from {s}."
            )
        unprobed = {n: r["probe_r2_reason"] for n, r in tasks.items() if r.get("probe_r2_reason")}
        for reason in dict.fromkeys(unprobed.values()):
            names = [n for n, why in unprobed.items() if why == reason]
            out.append(f"No probe R² for {', '.join(names)}: {reason}.")
        s = rng("knn_overlap")
        if s:
            out.append(
                f"Neighbourhoods: kNN overlap between observation and latent space ranges from {s} "
                f"(chance ≈ {_fmt(next(iter(tasks.values()))['knn_chance'], 3)})."
            )
        s, s2 = rng("kstep_rel_error_1", 3), rng("kstep_rel_error_last", 3)
        if s:
            out.append(f"Dynamics: relative latent error is {s} at 1 step and {s2} at the longest step.")
        s = rng("lipschitz_median")
        if s:
            out.append(f"Smoothness: median local Lipschitz constant of the latent dynamics ranges from {s}.")
        s = rng("reward_r2")
        if s:
            out.append(f"Reward calibration: R² of predicted vs realised reward ranges from {s}.")
        s = rng("termination_brier", 3)
        if s:
            out.append(
                f"Termination calibration (terminating tasks): Brier score ranges from {s}; predicted "
                f"minus realised termination rate {rng('termination_bias', 3)}; recall at p > 0.5 "
                f"{rng('termination_recall')} (along the model's rollout {rng('termination_rollout_recall')}), "
                f"false alarms {rng('termination_false_alarm', 3)} (rollout "
                f"{rng('termination_rollout_false_alarm', 3)}); realised terminations in the sample "
                f"{rng('termination_events', 0)}."
            )
        s = rng("value_corr")
        if s:
            out.append(
                f"Value calibration: correlation of V(z_t) with the realised discounted return ranges "
                f"from {s}; bias {rng('value_bias')}."
            )
        s = rng("elite_action_rms_small", 3)
        if s:
            out.append(
                f"Elite stability: the smallest observation noise moves the first action by {s} RMS "
                f"(planner seed floor {rng('elite_seed_floor_action_rms', 3)})."
            )
        s = rng("horizon_action_rms_h1", 3)
        if s:
            out.append(
                f"Terminal value: planning with horizon 1 instead of H moves the first action by {s} RMS, "
                f"and doubling H shifts the predicted return by {rng('horizon_return_shift_2h')}."
            )
        w, c = rng("warm_iters_to_ref"), rng("cold_iters_to_ref")
        if w:
            out.append(f"Warm start: iterations to reach the cold plan's quality are {w} warm vs {c} cold.")
    for t in results.get("latency_table", {}).get("tradeoff", [])[1:]:
        out.append(
            f"Latency/return: setting {t['setting']} gets {_fmt(100 * (t['return_ratio'] - 1), 1)}% return "
            f"at {_fmt(t['latency_ratio'], 2)}x the p50 latency of "
            f"{results['latency_table']['tradeoff'][0]['setting']}, missing "
            f"{_fmt(100 * t['deadline_miss_rate'], 1)}% of control deadlines."
        )
    return out


def summary_markdown(results: dict, images: list[str]) -> str:
    from agents.diagnostics.evaluation import format_table

    tasks = results["tasks"]
    cols = [
        ("effective_rank", "eff.rank"),
        ("participation_ratio", "PR"),
        ("spread", "spread"),
        ("knn_overlap", "kNN"),
        ("probe_r2", "probe R²"),
        ("kstep_rel_error_1", "err k=1"),
        ("kstep_rel_error_last", "err k=2H"),
        ("lipschitz_median", "Lip."),
        ("reward_r2", "rew R²"),
        ("value_corr", "val corr"),
        ("elite_action_rms_small", "elite Δa"),
        ("horizon_action_rms_h1", "H=1 Δa"),
        ("warm_iters_to_ref", "warm it"),
        ("cold_iters_to_ref", "cold it"),
    ]
    lines = ["# Latent-geometry and planner diagnostics", ""]
    cfg = results.get("config", {})
    lines.append(
        f"Model: latent {cfg.get('latent_dim')} (SimNorm groups of {cfg.get('simnorm_group')}), "
        f"planner {cfg.get('planner')}, {cfg.get('updates')} updates; diagnostics took "
        f"{_fmt(results.get('seconds', float('nan')), 1)} s."
    )
    lines += ["", "## Findings", ""] + [f"- {s}" for s in findings(results)]
    lines += [
        "",
        "## Per task",
        "",
        "| # | task | " + " | ".join(c for _, c in cols) + " |",
        "|---:|---|" + "---:|" * len(cols),
    ]
    for i, (n, r) in enumerate(tasks.items()):  # `#`: the bar's position in per_task.png
        lines.append(f"| {i} | {n} | " + " | ".join(_fmt(r.get(k)) for k, _ in cols) + " |")
    if "latency_table" in results:
        lt = results["latency_table"]
        lines += [
            "",
            "## Latency / return",
            "",
            f"Control budget for misses: {lt.get('budget_ms')} ms "
            "(a setting's `-dN` is the planner's own refinement budget, N ms).",
            "",
            format_table(lt["rows"]),
            "",
            "| setting | return / ref | p50 latency / ref | miss rate |",
            "|---|---:|---:|---:|",
        ]
        for t in lt["tradeoff"]:
            lines.append(
                f"| {t['setting']} | {_fmt(t['return_ratio'])} | {_fmt(t['latency_ratio'], 2)} | "
                f"{_fmt(t['deadline_miss_rate'])} |"
            )
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in images]
    lines += [
        "",
        "Definitions: eff.rank/PR on the simplex-tangent covariance (attainable dim L·7/8); kNN = shared "
        "fraction of 10 nearest neighbours, obs vs latent; probe R² = held-out R² of a linear map latent -> "
        f"observation, averaged over the observation dims whose std exceeds {PROBE_VARY_RTOL:g} x their RMS value "
        f"(and {PROBE_VARY_ATOL:g}) in both the fitted and held-out rows (– when none does); "
        "err = k-step latent MSE / latent variance; Lip. = spectral norm of d next / d z; "
        "elite Δa = first-action RMS change under 1% obs noise; H=1 Δa = first-action change when planning with horizon 1 instead of H; warm/cold it = MPPI "
        "iterations to reach the cold plan's final quality.",
        "",
    ]
    return "\n".join(lines)


def write_report(results: dict, out_dir: str | Path) -> Path:
    """Write diagnostics.json, the PNG plots and summary.md into out_dir; returns summary.md's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnostics.json").write_text(json.dumps(_jsonable(results), indent=1))
    images = []
    plots = [
        ("cka.png", plot_cka),
        ("per_task.png", plot_per_task),
        ("calibration.png", plot_calibration),
        ("dynamics.png", plot_dynamics),
    ]
    for fname, fn in plots:
        fn(results, out / fname)
        images.append(fname)
    if "latency_table" in results:
        plot_latency_pareto(results["latency_table"], out / "latency_pareto.png")
        images.append("latency_pareto.png")
    path = out / "summary.md"
    path.write_text(summary_markdown(results, images))
    return path
