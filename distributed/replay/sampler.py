"""Drawing (H+1)-row windows that stay inside one episode, and shaping them into a batch.

Pure functions over index arrays; ShardReader and MultiShardSampler supply the data.
"""

from __future__ import annotations

import numpy as np

from agents.batch import BATCH_KEYS


def window_counts(lengths: np.ndarray, horizon: int) -> np.ndarray:
    """Number of valid window starts per episode: an episode of L rows has max(L - H, 0)."""
    return np.maximum(np.asarray(lengths, np.int64) - horizon, 0)


def draw_uniform(counts: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n draws uniform over all (item, offset < counts[item]) pairs -> (item [n], offset [n])."""
    cum = np.cumsum(counts)
    if n and (len(cum) == 0 or cum[-1] == 0):
        raise ValueError("no valid window to draw from")
    u = rng.integers(0, cum[-1], size=n) if n else np.zeros(0, np.int64)
    item = np.searchsorted(cum, u, side="right")
    return item, u - (cum[item] - counts[item])


def balanced_task_counts(tasks, n: int, rng: np.random.Generator) -> dict[int, int]:
    """Each of n draws picks one of `tasks` with equal probability; returns task -> count."""
    tasks = list(tasks)
    if not tasks:
        raise ValueError("no task has a window long enough to sample")
    counts = np.bincount(rng.integers(0, len(tasks), size=n), minlength=len(tasks))
    return {int(t): int(c) for t, c in zip(tasks, counts, strict=False) if c}


def plan_draws(sources: list[dict[int, int]], n: int, balance: str, rng: np.random.Generator) -> list[dict]:
    """How many windows each source gives, from each source's {task: windows} (horizon fixed).

    The one meaning of balance in this project:
      "uniform": every window of every source equally likely (sources give in proportion to size);
      "task":    every task present in any source equally likely, then uniform over that task's
                 windows wherever they live;
      "sqrt":    a task's share proportional to the square root of its windows (between the two:
                 tasks with more data count more, but a 100x larger task gets only 10x the rows).
    Returns one `ShardReader.draw` keyword dict per source ({"n": k} or {"per_task": {t: k}}).
    """
    if balance not in ("uniform", "task", "sqrt"):
        raise ValueError(f"balance must be 'uniform', 'task' or 'sqrt', got {balance!r}")
    if balance == "uniform":
        weights = np.array([sum(s.values()) for s in sources], np.float64)
        if weights.sum() == 0:
            raise ValueError("no source has a window long enough to sample")
        return [{"n": int(k)} for k in rng.multinomial(n, weights / weights.sum())]
    plans: list[dict] = [{"per_task": {}} for _ in sources]
    tasks = sorted(t for t in set().union(*sources) if sum(s.get(t, 0) for s in sources) > 0)
    if balance == "task":
        counts = balanced_task_counts(tasks, n, rng)
    else:
        if not tasks:
            raise ValueError("no task has a window long enough to sample")
        w = np.sqrt([sum(s.get(t, 0) for s in sources) for t in tasks])
        counts = {t: int(k) for t, k in zip(tasks, rng.multinomial(n, w / w.sum()), strict=False) if k}
    for t, k in counts.items():
        w = np.array([s.get(t, 0) for s in sources], np.float64)
        for i, m in enumerate(rng.multinomial(k, w / w.sum())):
            if m:
                plans[i]["per_task"][t] = int(m)
    return plans


def assemble_batch(parts: dict[str, np.ndarray], task: np.ndarray, action_masks, action_dim: int) -> dict:
    """Windows [B, H+1, ...] -> the learner's batch (agents.batch.BATCH_KEYS).

    obs [H+1, B, O]; action [H, B, A], reward [H, B], terminated [H, B] from rows 1..H;
    task [B] int64; action_mask [B, A] float32 = action_masks[task] (all ones if None).
    """
    task = np.asarray(task, np.int64)
    if action_masks is None:
        mask = np.ones((len(task), action_dim), np.float32)
    else:
        table = np.asarray(action_masks, np.float32)
        if table.ndim != 2 or table.shape[1] != action_dim:
            raise ValueError(f"action_masks has shape {table.shape}; expected [num_tasks, {action_dim}]")
        if len(task) and task.max() >= table.shape[0]:
            raise ValueError(f"task id {int(task.max())} sampled but action_masks has only {table.shape[0]} rows")
        mask = table[task]
    batch = {
        "obs": np.ascontiguousarray(parts["obs"].transpose(1, 0, 2)),
        "action": np.ascontiguousarray(parts["action"][:, 1:].transpose(1, 0, 2)),
        "reward": np.ascontiguousarray(parts["reward"][:, 1:].T),
        "terminated": np.ascontiguousarray(parts["terminated"][:, 1:].T.astype(np.float32)),
        "task": task,
        "action_mask": mask,
    }
    return {k: batch[k] for k in BATCH_KEYS}
