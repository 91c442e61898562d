"""Checkpoints: one `torch.save` file of plain tensors/containers (loads with
`torch.load(weights_only=True)`) plus the model weights as safetensors.

Writes are atomic (temp file + rename on a file system; one whole-object PUT on an object
store, which has no rename), so a killed process leaves the previous checkpoint intact. A
directory may be a path or an fsspec URI (`s3://bucket/run`, read through universal-pathlib).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

import torch
from safetensors.torch import save, save_file

from agents.agent import Agent
from agents.config import AgentConfig, ModelConfig, OptimConfig, PlannerConfig, constraints_from_plain

if TYPE_CHECKING:
    from upath import UPath

CHECKPOINT_FILE = "checkpoint.pt"
WEIGHTS_FILE = "model.safetensors"


def _path(p: str | os.PathLike[str] | UPath) -> Path | UPath:
    """A path object for a file-system path or an fsspec URI (agents/ stays free of the run-storage module)."""
    if isinstance(p, str) and "://" in p:
        from upath import UPath

        return UPath(p)
    if hasattr(p, "protocol"):  # an UPath already (only it has `protocol`; upath is imported if one exists)
        from upath import UPath

        if not isinstance(p, UPath):
            raise TypeError(f"{p!r} has an fsspec `protocol` but is not an UPath; pass a path, URI string or UPath")
        return p
    if not isinstance(p, (str, os.PathLike)):
        raise TypeError(f"{p!r} is not a path: pass a path, URI string or UPath")
    return Path(p)


def _local(p: object) -> TypeGuard[Path]:
    return isinstance(p, Path) and getattr(p, "protocol", "") in ("", "file", "local")


def save_checkpoint(directory: str | os.PathLike[str] | UPath, agent: Agent, extra: dict | None = None) -> Path | UPath:
    """Write `agent` (model, optimisers, scale, counters) and `extra` (plain data: counters,
    RNG states, run metadata) to `directory/checkpoint.pt`; returns that path."""
    return write_checkpoint(directory, {"agent": agent.state_dict(), "extra": extra or {}}, agent.model.state_dict())


def write_checkpoint(directory: str | os.PathLike[str] | UPath, state: dict, model_weights: dict) -> Path | UPath:
    """`state` (plain containers and tensors, with an "agent" entry) to `directory/checkpoint.pt`
    and `model_weights` (a WorldModel state dict) to `model.safetensors`. Each file is written
    to a temp file, fsynced, renamed, and the directory fsynced: a kill or power loss leaves the
    previous checkpoint or the new one, never a torn file. On an object store each file is
    serialised in memory and written as one object (a PUT is atomic: the old object or the new)."""
    directory = _path(directory)
    path = directory / CHECKPOINT_FILE
    weights = {k: v.detach().contiguous().cpu() for k, v in model_weights.items()}
    if not _local(directory):
        buf = io.BytesIO()
        torch.save(state, buf)
        path.write_bytes(buf.getvalue())
        (directory / WEIGHTS_FILE).write_bytes(save(weights))
        return path
    directory.mkdir(parents=True, exist_ok=True)
    _atomic(directory / CHECKPOINT_FILE, lambda tmp: torch.save(state, tmp))
    _atomic(directory / WEIGHTS_FILE, lambda tmp: save_file(weights, str(tmp)))
    return path


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike[str] | UPath) -> dict:
    """Read a checkpoint file (or the checkpoint in a directory) with weights_only=True."""
    path = _path(path)
    if path.is_dir():  # (on an object store: a prefix with objects under it)
        path = path / CHECKPOINT_FILE
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        source = path if _local(path) else io.BytesIO(path.read_bytes())
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise ValueError(f"{path} is not a readable latentfleet checkpoint: {exc}") from exc
    if not isinstance(state, dict) or "agent" not in state:
        keys = sorted(state)[:6] if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{path} is not a latentfleet checkpoint (a checkpoint of another layout: top-level "
            f"{keys}, no 'agent'); a TD-MPC2 checkpoint is imported with launch/import_checkpoint.py"
        )
    return state


def config_from_checkpoint(state: dict, device: str | None = None) -> AgentConfig:
    c = state["agent"]["config"]
    # batch_size and horizon were copies of the run's batch size and the planner's horizon before they had one home
    optim = {k: v for k, v in c["optim"].items() if k not in ("batch_size", "horizon")}
    return AgentConfig(
        model=ModelConfig(**c["model"]),
        optim=OptimConfig(**optim),
        planner=_planner_config(c["planner"]),
        discounts=tuple(c["discounts"]),
        device=device or c["device"],
        precision=c["precision"],
        constraints=constraints_from_plain(c.get("constraints")),
    )


def _planner_config(saved: dict) -> PlannerConfig:
    saved = dict(saved)
    if "use_termination" in saved:  # written before planner.termination (hard | soft | off) replaced it
        saved["termination"] = "hard" if saved.pop("use_termination") else "off"
    return PlannerConfig(**saved)


def agent_from_checkpoint(path: str | os.PathLike, device: str | None = None) -> tuple[Agent, dict]:
    """Rebuild an Agent exactly as saved; returns (agent, extra)."""
    state = load_checkpoint(path)
    cfg = config_from_checkpoint(state, device)
    agent = Agent(cfg, action_masks=state["agent"]["model"]["action_masks"])
    agent.load_state_dict(state["agent"])
    return agent, state["extra"]
