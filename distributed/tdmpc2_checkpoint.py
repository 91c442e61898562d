"""Turn a published TD-MPC2 multitask checkpoint into a run directory of this project.

    import_tdmpc2_checkpoint("mt80-1M.pt", task_set="mt80", model_size=1, out="runs/tdmpc2-mt80-1")

writes `checkpoint.pt` + `model.safetensors` (agents/checkpoint.py) and `run.json` (task names in
TD-MPC2's order, which is our mt30/mt80 order, with their dims). From there `launch/diagnose.py`
plans with it, `launch/transfer.py` measures zero-shot / few-shot transfer to a split's held-out
bodies, and `Agent.add_tasks` + `set_trainable` + the training loop finetune it on new tasks. The weight
mapping itself is agents/tdmpc2_import.py; this module adds what needs the task sets.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from agents.agent import Agent
from agents.checkpoint import CHECKPOINT_FILE, save_checkpoint
from agents.config import AgentConfig, PlannerConfig, checked_options, discount_from_episode_length
from agents.tdmpc2_import import (
    TDMPC2_MODEL_SIZES,
    TDMPC2_TASK_SETS,
    TDMPC2CheckpointError,
    check_action_masks,
    check_architecture,
    expected_architecture,
    load_into_world_model,
    load_tdmpc2_file,
    model_config,
    parse_tdmpc2_state,
)

IMPORT_SEED = 1  # the default seed: the loop's run-directory identity check then accepts the directory


def published_architectures() -> dict:
    """{"task_set=mt80 model_size=5": TDMPC2Architecture, ...} for every published combination."""
    from envs import load_task_set

    sets = {name: load_task_set(name) for name in TDMPC2_TASK_SETS}
    return {
        f"task_set={name} model_size={size}": expected_architecture(
            name, size, num_tasks=len(ts), obs_dim=ts.max_obs_dim, action_dim=ts.max_action_dim
        )
        for name, ts in sets.items()
        for size in TDMPC2_MODEL_SIZES
    }


def import_tdmpc2_checkpoint(
    file: str | os.PathLike | dict,
    task_set: str,
    model_size: str | int,
    out: str | os.PathLike,
    *,
    planner: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Read a TD-MPC2 checkpoint (a path, or an already loaded state dict), check it is the
    (task_set, model_size) model TD-MPC2 published, and write a run directory at `out`; returns it.
    `planner`: PlannerConfig overrides stored with the agent (default TD-MPC2's settings)."""
    from envs import load_task_set

    size = str(model_size)
    asked = f"task_set={task_set} model_size={size}"
    if task_set not in TDMPC2_TASK_SETS:
        raise TDMPC2CheckpointError(
            f"task_set={task_set!r}: TD-MPC2 published multitask checkpoints for {' and '.join(TDMPC2_TASK_SETS)} only"
        )
    ts = load_task_set(task_set)
    expected = expected_architecture(
        task_set, size, num_tasks=len(ts), obs_dim=ts.max_obs_dim, action_dim=ts.max_action_dim
    )
    out = Path(out)
    if (out / CHECKPOINT_FILE).exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a checkpoint; choose another out= or pass overwrite=true")
    state = load_tdmpc2_file(file) if not isinstance(file, dict) else file
    weights = parse_tdmpc2_state(state)
    check_architecture(weights.arch, expected, asked, published_architectures())
    task_masks = torch.as_tensor(ts.action_masks())
    if weights.action_masks is not None:
        check_action_masks(weights.action_masks, task_masks, list(ts.names))
    cfg = AgentConfig(
        model=model_config(weights, size),
        planner=PlannerConfig(**checked_options(PlannerConfig, planner, "planner option")),
        discounts=tuple(discount_from_episode_length(L) for L in ts.episode_lengths()),
    )
    agent = Agent(cfg, action_masks=weights.action_masks if weights.action_masks is not None else task_masks)
    load_into_world_model(agent.model, weights)
    source = {
        "format": "tdmpc2",
        "layout": weights.layout,
        "file": str(Path(file).resolve()) if not isinstance(file, dict) else None,
        "sha256": _sha256(file) if not isinstance(file, dict) else None,
        "action_masks": "checkpoint" if weights.action_masks is not None else "task set",
        "target_q": weights.target_q,
        "log_std": "checkpoint" if weights.log_std_min is not None else "TD-MPC2 default",
    }
    names = list(ts.names)
    save_checkpoint(
        out,
        agent,
        {"env_steps": 0, "updates": 0, "episodes": 0, "task_set": task_set, "tasks": names, "source": source},
    )  # no loop state: a run started here seeds its RNGs afresh
    meta = {
        "task": task_set,
        "task_set": task_set,
        "model_size": size,
        "seed": IMPORT_SEED,
        "tasks": names,
        "obs_dims": [t.obs_dim for t in ts.tasks],
        "action_dims": [t.action_dim for t in ts.tasks],
        "episode_lengths": [t.episode_length for t in ts.tasks],
        "padded_obs_dim": ts.max_obs_dim,
        "padded_action_dim": ts.max_action_dim,
        "task_dim": weights.arch.task_dim,
        "latent_dim": weights.arch.latent_dim,
        "imported_from": source,
    }
    (out / "run.json").write_text(json.dumps(meta, indent=1))
    return out


def _sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
