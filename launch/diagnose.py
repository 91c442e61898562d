"""Diagnostics on a checkpoint: per-task latent geometry, planner audits, latency/return table.

    python launch/diagnose.py checkpoint=runs/x [tasks=[a,b]] [episodes=2] [out=dir] [samples=256]
        [audit_states=16] [settings=[h3-i6-n512-fp32,h1-i6-n512-fp32,...]] [budget_ms=20]
        [table_episodes=1] [max_steps=N] [seed=0] [device=cpu] [threads=1]

Hydra overrides of `DiagnoseOptions` below. Wiring only: load the agent, collect evaluation
episodes per task with the agent planning, cut replay-style windows of 2H steps from them
(held-out data), run `run_diagnostics`, the latency/return table over planner settings, and write
the report (JSON, PNGs, summary.md) to `out` (default: <checkpoint>/diagnostics).
The checkpoint's `extra` names the task set (`task_set`, `tasks`); without it give
`tasks=` as the training task list, in training order (task ids are positions).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed.storage import StoragePath

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class DiagnoseOptions:
    checkpoint: str = "???"  # a run directory or checkpoint.pt (required)
    tasks: Any = None  # a list [a,b] (or a quoted 'a,b'): a subset, or the training list for checkpoints without one
    episodes: int = 2
    out: str | None = None
    samples: int = 256
    audit_states: int = 16
    settings: Any = None  # a list [h3-i6-n512-fp32,...] of h<H>-i<I>-n<N>-<fp32|bf16>[-d<budget>]
    budget_ms: float = 20.0
    table_episodes: int = 1
    max_steps: int | None = None
    seed: int = 0
    device: str = "cpu"
    threads: int = 1


def default_settings(pc) -> list[str]:
    """The agent's own planner, shorter/longer horizon, twice the iterations, bf16, and the
    agent's planner held to the control budget (the +return-at-xlatency question)."""
    H, I, N = pc.horizon, pc.iterations, pc.num_samples
    return [
        f"h{H}-i{I}-n{N}-fp32",
        f"h1-i{I}-n{N}-fp32",
        f"h{2 * H}-i{I}-n{N}-fp32",
        f"h{H}-i{2 * I}-n{N}-fp32",
        f"h{H}-i{I}-n{N}-bf16",
    ]


def main(argv: list[str]) -> StoragePath:
    import numpy as np

    import envs
    from agents.checkpoint import agent_from_checkpoint
    from agents.diagnostics import (
        latency_return_table,
        parse_setting,
        run_diagnostics,
        run_episodes,
        windows_from_episodes,
        write_report,
    )
    from agents.host import use_cpu_share
    from launch.common import options

    o = options(DiagnoseOptions, argv)
    a = {
        k: (None if v is None else ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
        for k, v in vars(o).items()
    }
    use_cpu_share(o.threads)
    from distributed.storage import check_writable, is_remote, local_staging, storage_path

    try:
        out = storage_path(o.out or storage_path(o.checkpoint) / "diagnostics")  # a directory or a URI
        check_writable(str(out), "out")  # a missing bucket: said now, not after the diagnostics ran
        agent, extra = agent_from_checkpoint(o.checkpoint, device=o.device)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    set_name = extra.get("task_set") or a["tasks"]
    if not set_name:
        raise SystemExit("the checkpoint names no task set (extra['task_set']); give tasks=<training task list>")
    task_set = envs.load_task_set(set_name)
    if (task_set.max_obs_dim, task_set.max_action_dim) != (agent.cfg.model.obs_dim, agent.cfg.model.action_dim):
        raise SystemExit(
            f"task set {set_name!r} pads to {(task_set.max_obs_dim, task_set.max_action_dim)} but the "
            f"checkpoint's model is {(agent.cfg.model.obs_dim, agent.cfg.model.action_dim)}"
        )
    names = (
        a["tasks"].split(",") if a["tasks"] and extra.get("task_set") else list(extra.get("tasks") or task_set.names)
    )
    ids = {n: task_set.index(n) for n in names}
    seed, max_steps = o.seed, o.max_steps
    env_fn = lambda task, s: envs.make_padded_env(task_set, task, s)  # noqa: E731
    log = lambda msg: print(msg, flush=True)  # noqa: E731

    episodes, samples = {}, {}
    rng = np.random.default_rng(seed)
    masks = task_set.action_masks()
    for n, i in ids.items():
        episodes[n] = run_episodes(agent, env_fn, n, i, episodes=o.episodes, seed=seed + 1000, max_steps=max_steps)
        samples[n] = windows_from_episodes(episodes[n], 2 * agent.cfg.planner.horizon, o.samples, masks[i], rng)
        log(f"{n}: returns {[round(e['return'], 1) for e in episodes[n]]}")
    results = run_diagnostics(
        agent,
        samples,
        episodes_by_task=episodes,
        obs_dims={n: task_set.tasks[i].obs_dim for n, i in ids.items()},
        max_samples=o.samples,
        audit_states=o.audit_states,
        seed=seed,
    )
    log(f"diagnostics: {results['seconds']:.1f} s")
    settings = [
        parse_setting(s) for s in (a["settings"].split(",") if a["settings"] else default_settings(agent.cfg.planner))
    ]
    results["latency_table"] = latency_return_table(
        agent,
        env_fn,
        ids,
        settings,
        episodes=o.table_episodes,
        budget_ms=o.budget_ms,
        seed=seed + 2000,
        max_steps=max_steps,
        progress=log,
    )
    results["checkpoint"] = {
        "path": o.checkpoint,
        "task_set": set_name,
        **{k: extra[k] for k in ("tasks", "env_steps", "updates") if k in extra},
    }
    with local_staging(out) as d:  # the report's writers need a file system; uploaded to a URI after
        path = write_report(results, d)
    if is_remote(out):
        path = out / path.name
    log(f"report: {path}")
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
