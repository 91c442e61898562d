"""Samples-per-insert rate limiting between collection and learning (the update-to-data ratio).

Inserts are agent steps stored; samples are gradient updates. Learning may start once
`min_inserts` steps are stored (the first allowance includes the seeding phase, as in
TD-MPC2); after that learners may run `ratio` updates per stored step, and collection is
held back when learners fall more than `max_lag` updates behind. State is checkpointed.
"""

from __future__ import annotations


class RateLimiter:
    def __init__(self, ratio: float, min_inserts: int, max_lag: float):
        if ratio <= 0:
            raise ValueError(f"update-to-data ratio must be > 0, got {ratio}")
        self.ratio, self.min_inserts, self.max_lag = float(ratio), int(min_inserts), float(max_lag)
        self.inserts = 0
        self.samples = 0

    def record_inserts(self, n: int) -> None:
        self.inserts += int(n)

    def record_samples(self, n: int) -> None:
        self.samples += int(n)

    def allowed_samples(self) -> int:
        """Updates learners may run now without exceeding the ratio."""
        if self.inserts < self.min_inserts:
            return 0
        return max(0, int(self.inserts * self.ratio) - self.samples)

    def can_insert(self) -> bool:
        """False while learners lag more than `max_lag` updates behind the ratio."""
        if self.inserts < self.min_inserts:
            return True
        return self.allowed_samples() <= self.max_lag

    def state_dict(self) -> dict:
        return {
            "inserts": self.inserts,
            "samples": self.samples,
            "ratio": self.ratio,
            "min_inserts": self.min_inserts,
            "max_lag": self.max_lag,
        }

    def load_state_dict(self, state: dict) -> None:
        self.inserts, self.samples = int(state["inserts"]), int(state["samples"])
