"""Kernel launches of a call, counted on CPU: the planner tests and bench/planner.py use it."""

from __future__ import annotations


def count_launches(fn) -> int:
    """Top-level aten ops that fn() dispatches (torch.profiler on CPU): each would be at least one
    kernel launch on a GPU, so this is the CPU-side proxy for launches per call."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()

    def outermost_aten(e) -> bool:
        p = e.cpu_parent
        while p is not None:
            if p.name.startswith("aten::"):
                return False
            p = p.cpu_parent
        return e.name.startswith("aten::")

    events = prof.events()
    if events is None:  # (only before the profile block has run)
        raise RuntimeError("the profiler recorded no events")
    return sum(1 for e in events if outermost_aten(e))
