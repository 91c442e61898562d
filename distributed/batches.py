"""Where learner batches come from: one small protocol, three sources.

A batch source has `sample(batch_size, horizon, rng, balance=None) -> arrays` (agents.batch.BATCH_KEYS, with
`action_mask` from the task set's masks; `balance` None: the source's own), `windows(horizon)`
(how many windows it can draw from: 0 means not yet) and `refresh()` (pick up new commits).

    StoreSource       replay shards on disk, read-only (one shard or many); a damaged chunk costs
                      the episodes with rows in it, a shard that cannot be opened is set aside
    ShardActorSource  replay-shard actors of a Ray job (their committed data)
    Mixture           a fixed share of every batch from each of two sources (online + offline)

Task balance means the same thing in every source (`distributed.replay.sampler.plan_draws`):
`balance="uniform"` makes every stored window of H+1 steps equally likely; `balance="task"` makes
every task present in the source equally likely, then windows uniform within the task, whichever
shard holds them. A Mixture applies the balance within each of its sources; the ratio fixes the
share of rows between them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from agents.batch import BATCH_KEYS
from distributed.parts import ray_value

log = logging.getLogger(__name__)


def concat_batches(parts: list[dict]) -> dict:
    """Join batches along the batch axis: time-major arrays on axis 1, per-sample ones on axis 0."""
    return {k: np.concatenate([p[k] for p in parts], axis=0 if k in ("task", "action_mask") else 1) for k in BATCH_KEYS}


def fit_batch(arrays: dict, obs_dim: int, action_masks: np.ndarray) -> dict:
    """Zero-pad a store batch to the model's obs/action dims and set action_mask = masks[task]."""
    out = dict(arrays)
    for key, width in (("obs", obs_dim), ("action", action_masks.shape[1])):
        have = out[key].shape[-1]
        if have > width:
            raise ValueError(f"store {key} dim {have} exceeds the model's {width}")
        if have < width:
            out[key] = np.pad(out[key], ((0, 0), (0, 0), (0, width - have)))
    if out["task"].size and out["task"].max() >= len(action_masks):
        raise ValueError(f"store holds task id {int(out['task'].max())}; the task set has {len(action_masks)} tasks")
    out["action_mask"] = np.asarray(action_masks, np.float32)[out["task"]]
    return out


# -- stores on disk ------------------------------------------------------------------------------
def shard_paths(data) -> list[Path]:
    """Shard directories named by `data`: a shard itself, or a directory of shard-* (e.g. run/replay)."""
    paths = []
    from distributed.storage import storage_path

    for d in [data] if isinstance(data, (str, Path)) or hasattr(data, "protocol") else data:
        d = storage_path(d)  # a directory, or an object-store URI (read-only)
        if (d / "zarr.json").exists():
            paths.append(d)
        else:
            found = sorted(p for p in d.glob("*") if (p / "zarr.json").exists()) if d.is_dir() else []
            if not found:
                raise FileNotFoundError(f"{d} is neither a replay shard nor a directory of shards")
            paths.extend(found)
    if not paths:
        raise ValueError("no replay data given (offline_data=<shard or directory of shards>)")
    return paths


class StoreSource:
    """Batches from replay shards on disk, opened read-only (no lock, no recovery writes), padded to
    the model's dims when the store is narrower (e.g. imported data of one embodiment)."""

    def __init__(
        self,
        data,
        action_masks: np.ndarray,
        obs_dim: int,
        *,
        balance: str = "task",
        cache_bytes: int = 256 << 20,
        record_damage: dict | None = None,
    ):
        """`record_damage`: shard path -> its writer's `quarantine` (a shard this process writes)."""
        from distributed.replay.multi import MultiShardSampler

        self.sampler = MultiShardSampler(shard_paths(data), cache_bytes=cache_bytes, record_damage=record_damage)
        self.masks = np.asarray(action_masks, np.float32)
        self.obs_dim, self.balance = obs_dim, balance

    def refresh(self) -> None:
        self.sampler.refresh()

    def damage(self) -> dict:
        """{"set_aside": shard path -> one line why (could not be opened), "quarantine": [damaged chunks and the
        episodes they cost, as `layout.Quarantine.summary()` plus its `line`]}."""
        return {"set_aside": dict(self.sampler.failed), "quarantine": [q.summary() for q in self.sampler.quarantine]}

    def windows(self, horizon: int) -> int:
        return sum(sum(r.task_windows(horizon).values()) for r in self.sampler.healthy)

    def sample(self, batch_size: int, horizon: int, rng: np.random.Generator, balance: str | None = None) -> dict:
        arrays = self.sampler.sample(batch_size, horizon, rng, balance=balance or self.balance)
        return fit_batch(arrays, self.obs_dim, self.masks)


class ShardActorSource:
    """Batches from the replay-shard actors of a Ray job: the draws are planned over all shards'
    committed windows (one balance meaning), each shard serves its part, and one request is kept
    in flight ahead of use. A shard quarantines a damaged chunk's episodes itself and serves the rest;
    a shard that still fails to serve is set aside whole (logged, named)."""

    def __init__(self, shards: list, action_masks: np.ndarray, *, balance: str = "task"):
        self.shards = list(shards)
        self.masks = np.asarray(action_masks, np.float32)
        self.balance = balance
        self.failed: dict[int, str] = {}  # shard index -> what was wrong
        self._pending = None
        self._counts = None  # ((horizon, shards asked), refs of their task_windows) for the next request

    def refresh(self) -> None:
        pass  # shard actors serve what they have committed

    def _healthy(self) -> list[int]:
        return [i for i in range(len(self.shards)) if i not in self.failed]

    def windows(self, horizon: int) -> int:
        import ray

        return sum(
            sum(w.values()) for w in ray.get([self.shards[i].task_windows.remote(horizon) for i in self._healthy()])
        )

    def _request(self, batch_size: int, horizon: int, balance: str, rng: np.random.Generator):
        import ray

        from distributed.replay.sampler import plan_draws

        healthy = self._healthy()
        if not healthy:
            raise RuntimeError(f"every replay shard was set aside: {self.failed}")
        # the counts asked for with the previous request (one batch old: they only shift the proportions
        # by what was committed since), so that no round trip to the shards waits in front of a batch
        counts, self._counts = self._counts, None
        if counts is None or counts[0] != (horizon, healthy):
            counts = ((horizon, healthy), [self.shards[i].task_windows.remote(horizon) for i in healthy])
        per_shard = ray.get(counts[1])
        if not any(per_shard):  # episodes may be handed over but not yet committed: commit them now
            ray.get([self.shards[i].flush.remote() for i in healthy])
            per_shard = ray.get([self.shards[i].task_windows.remote(horizon) for i in healthy])
        self._counts = ((horizon, healthy), [self.shards[i].task_windows.remote(horizon) for i in healthy])
        plans = plan_draws(per_shard, batch_size, balance, rng)
        seeds = rng.integers(0, 2**31, len(healthy))
        return [
            (i, self.shards[i].sample_plan.remote(p, horizon, self.masks, int(s)))
            for i, p, s in zip(healthy, plans, seeds, strict=False)
            if p.get("n") or p.get("per_task")
        ]

    def sample(self, batch_size: int, horizon: int, rng: np.random.Generator, balance: str | None = None) -> dict:
        from ray.exceptions import RayTaskError

        from distributed.replay.errors import ChunkError, NoWindowsError

        key = (batch_size, horizon, balance or self.balance)
        for _ in range(len(self.shards) + 1):
            if self._pending is None or self._pending[0] != key:
                self._pending = (key, self._request(*key, rng))
            requests = self._pending[1]
            self._pending = None
            try:
                parts = [ray_value(ref) for _, ref in requests]
            except RayTaskError as exc:
                if isinstance(exc.cause, NoWindowsError):  # planned on stale counts (a shard restarted without its
                    self._counts = None  # data holds fewer windows): count again and redraw
                    continue
                if not isinstance(exc.cause, ChunkError):  # the shard's own error, without Ray's traceback
                    raise
                bad = next(i for i, ref in requests if _failed(ref))
                self.failed[bad] = f"{exc.cause}; it fails again after its episodes were set aside"
                log.info("replay shard %d set aside whole: %s", bad, self.failed[bad])
                continue
            self._pending = (key, self._request(*key, rng))
            return concat_batches(parts)
        raise RuntimeError(f"could not sample: shards set aside {self.failed}")

    def damage(self) -> dict:
        """Like StoreSource.damage: shards set aside here, and the chunks every healthy shard quarantined."""
        import ray

        stats = ray.get([self.shards[i].stats.remote() for i in self._healthy()])
        return {
            "set_aside": {str(k): v for k, v in self.failed.items()},
            "quarantine": [q for s in stats for q in s["quarantine"]],
        }


def _failed(ref) -> bool:
    import ray

    try:
        ray.get(ref)
        return False
    except Exception:
        return True


class Mixture:
    """`ratio` of every batch (rounded) from `second`, the rest from `first`."""

    def __init__(self, first, second, ratio: float):  # ratio: offline_ratio, in [0, 1] (check_config)
        self.first, self.second, self.ratio = first, second, float(ratio)

    def refresh(self) -> None:
        self.first.refresh()
        self.second.refresh()

    def damage(self) -> dict:
        a, b = self.first.damage(), self.second.damage()
        return {"set_aside": {**a["set_aside"], **b["set_aside"]}, "quarantine": a["quarantine"] + b["quarantine"]}

    def windows(self, horizon: int) -> int:
        """Windows of the sources in use; 0 while one of them has none (a batch needs both)."""
        used = [s for s, share in ((self.first, 1 - self.ratio), (self.second, self.ratio)) if share > 0]
        counts = [s.windows(horizon) for s in used]
        return 0 if min(counts) == 0 else sum(counts)

    def sample(self, batch_size: int, horizon: int, rng: np.random.Generator, balance: str | None = None) -> dict:
        n2 = int(round(self.ratio * batch_size))
        parts = []
        if n2 < batch_size:
            parts.append(self.first.sample(batch_size - n2, horizon, rng, balance))
        if n2:
            parts.append(self.second.sample(n2, horizon, rng, balance))
        return concat_batches(parts)
