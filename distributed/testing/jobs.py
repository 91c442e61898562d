"""Helpers for the job tests: compose the real Hydra config, read a run's replay store."""

from __future__ import annotations

from pathlib import Path

from distributed.config import RunConfig, compose


def compose_run_config(overrides: list[str], config_name: str = "mt80") -> RunConfig:
    return compose(config_name, overrides)


def run_job(cfg: RunConfig) -> tuple[dict, list[str]]:
    """Run the loop to the end on the session's Ray; (summary, every learner rank's parameter digest)."""
    from distributed.loop import Loop

    loop = Loop(cfg)
    try:
        summary = loop.run()
        digests = loop.parts.learners.digests()
    finally:
        loop.shutdown()
    return summary, digests


def store_episodes(run_dir: Path) -> dict[tuple[str, int], tuple[int, int]]:
    """(shard, episode id) -> (task, length) for every live episode of every shard, each shard
    verified first; a duplicate id fails the test."""
    import zarr

    from distributed.replay.layout import EPISODE_GROUP, read_state
    from distributed.replay.verify import verify_shard

    seen: dict = {}
    for shard in sorted(p for p in (run_dir / "replay").glob("shard-*") if p.is_dir()):
        verify_shard(shard)
        _, commit = read_state(shard)
        g = zarr.open_group(str(shard), mode="r")[EPISODE_GROUP]
        lo, hi = commit.first_episode, commit.episodes
        for eid, task, length in zip(g["id"][lo:hi], g["task"][lo:hi], g["length"][lo:hi], strict=False):
            key = (shard.name, int(eid))
            assert key not in seen, f"duplicate episode {key}"
            seen[key] = (int(task), int(length))
    return seen
