"""What a task is, as data: `TaskSpec` (the discount derived from its episode length is the
agent's business: agents.config.discount_from_episode_length)."""

from __future__ import annotations

from dataclasses import dataclass

from agents.config import ActionConstraints  # plain data (no torch): the planner reads the same class


@dataclass(frozen=True)
class TaskSpec:
    """One task. `episode_length` counts agent steps (after action repeat). `can_terminate`: the
    simulator may end an episode early (a fallen Hopper); a time limit is never a termination."""

    name: str
    domain: str  # "dmc" | "metaworld" | "gym"
    embodiment: str
    obs_dim: int
    action_dim: int
    episode_length: int
    action_repeat: int
    can_terminate: bool = False
    # the task's own action limits (catalogue row "constraints"); None: its embodiment's, if any
    # (embodiments/constraints.py), else only the [-1, 1] box
    constraints: ActionConstraints | None = None
