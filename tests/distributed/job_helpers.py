"""Helpers for the job tests: compose the real Hydra config, read a run's replay store."""
from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from distributed.config import RunConfig, run_config_from

CONFIGS = str(Path(__file__).resolve().parents[2] / "configs")


def compose_run_config(overrides: list[str], config_name: str = "mt80") -> RunConfig:
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides)
    values = OmegaConf.to_container(cfg, resolve=True)
    values.pop("ray", None)
    return run_config_from(values)


def run_job(cfg: RunConfig) -> tuple[dict, list[str]]:
    """Run a Coordinator to the end on the session's Ray; (summary, every learner rank's parameter digest)."""
    import ray

    from distributed.coordinator import Coordinator

    co = Coordinator(cfg)
    try:
        summary = co.run()
        digests = ray.get([lr.param_digest.remote() for lr in co.learners])
    finally:
        co.shutdown()
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
        for eid, task, length in zip(g["id"][lo:hi], g["task"][lo:hi], g["length"][lo:hi]):
            key = (shard.name, int(eid))
            assert key not in seen, f"duplicate episode {key}"
            seen[key] = (int(task), int(length))
    return seen
