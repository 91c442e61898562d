"""What a task is, as data: `TaskSpec`, and the discount TD-MPC2 derives from an episode length."""
from __future__ import annotations

from dataclasses import dataclass

# TD-MPC2's heuristic: discount (f - 1) / f with f = episode_length / 5, clipped to [0.95, 0.995].
DISCOUNT_DENOM, DISCOUNT_MIN, DISCOUNT_MAX = 5.0, 0.95, 0.995


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


def discount_from_episode_length(episode_length: int) -> float:
    """TD-MPC2's per-task discount: 0.99 for 500-step dm_control episodes, 0.95 for 100-step Meta-World."""
    if episode_length <= 0:
        raise ValueError(f"episode_length must be positive, got {episode_length}")
    frac = episode_length / DISCOUNT_DENOM
    return float(min(max((frac - 1) / frac, DISCOUNT_MIN), DISCOUNT_MAX))
