"""Checkpoints: one `torch.save` file of plain tensors/containers (loads with
`torch.load(weights_only=True)`) plus the model weights as safetensors.

Writes are atomic (temp file + rename), so a killed process leaves the previous
checkpoint intact.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from agents.agent import Agent
from agents.config import AgentConfig, ModelConfig, OptimConfig, PlannerConfig

CHECKPOINT_FILE = "checkpoint.pt"
WEIGHTS_FILE = "model.safetensors"


def save_checkpoint(directory: str | os.PathLike, agent: Agent, extra: dict | None = None) -> Path:
    """Write `agent` (model, optimisers, scale, counters) and `extra` (plain data: counters,
    RNG states, run metadata) to `directory/checkpoint.pt`; returns that path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CHECKPOINT_FILE
    tmp = path.with_suffix(".pt.tmp")
    torch.save({"agent": agent.state_dict(), "extra": extra or {}}, tmp)
    os.replace(tmp, path)
    weights = {k: v.detach().contiguous().cpu() for k, v in agent.model.state_dict().items()}
    tmp_w = directory / (WEIGHTS_FILE + ".tmp")
    save_file(weights, str(tmp_w))
    os.replace(tmp_w, directory / WEIGHTS_FILE)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint file (or the checkpoint in a directory) with weights_only=True."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise ValueError(f"{path} is not a readable latentfleet checkpoint: {exc}") from exc


def config_from_checkpoint(state: dict, device: str | None = None) -> AgentConfig:
    c = state["agent"]["config"]
    return AgentConfig(model=ModelConfig(**c["model"]), optim=OptimConfig(**c["optim"]),
                       planner=PlannerConfig(**c["planner"]), discounts=tuple(c["discounts"]),
                       device=device or c["device"], precision=c["precision"])


def agent_from_checkpoint(path: str | os.PathLike, device: str | None = None) -> tuple[Agent, dict]:
    """Rebuild an Agent exactly as saved; returns (agent, extra)."""
    state = load_checkpoint(path)
    cfg = config_from_checkpoint(state, device)
    agent = Agent(cfg, action_masks=state["agent"]["model"]["action_masks"])
    agent.load_state_dict(state["agent"])
    return agent, state["extra"]
