"""Helpers for the job tests: compose the real Hydra config, run the loop on the session's Ray, read a
run's replay store, write a store of random-action episodes, a random policy's return to beat, and a
planner small enough for a test's budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from distributed.config import RunConfig, compose

FAST_PLANNER = dict(num_samples=128, num_elites=16, num_pi_trajs=8, iterations=3)
# overrides of a run that takes seconds: tiny model, a one-iteration planner, one short evaluation episode
TINY_RUN = [
    "model_size=tiny",
    "wandb_mode=disabled",
    "progress=false",
    "eval_episodes=1",
    "eval_max_steps=5",
    "planner.num_samples=16",
    "planner.num_elites=4",
    "planner.num_pi_trajs=4",
    "planner.iterations=1",
    "batch_size=16",
    "diagnostics=false",
]


def compose_run_config(overrides: list[str], config_name: str = "mt80") -> RunConfig:
    return compose(config_name, overrides)


def run_job(cfg: RunConfig) -> tuple[dict, list[str]]:
    """Run the loop to the end on the session's Ray; (summary, every learner rank's parameter digest)."""
    from distributed.loop import Loop

    loop = Loop(cfg)
    try:
        summary = loop.run()
        digests = loop.built_parts().learners.digests()
    finally:
        loop.shutdown()
    return summary, digests


def store_episodes(run_dir: Path) -> dict[tuple[str, int], tuple[int, int]]:
    """(shard, episode id) -> (task, length) for every live episode of every shard, each shard
    verified first; a duplicate id fails the test."""
    import zarr

    from distributed.replay.layout import EPISODE_GROUP, array_at, read_rows, read_state
    from distributed.replay.verify import verify_shard

    seen: dict = {}
    for shard in sorted(p for p in (run_dir / "replay").glob("shard-*") if p.is_dir()):
        verify_shard(shard)
        _, commit = read_state(shard)
        g = zarr.open_group(str(shard), mode="r")
        rows = slice(commit.first_episode, commit.episodes)
        ids, tasks, lengths = (read_rows(array_at(g, f"{EPISODE_GROUP}/{k}"), rows) for k in ("id", "task", "length"))
        for eid, task, length in zip(ids, tasks, lengths, strict=False):
            key = (shard.name, int(eid))
            assert key not in seen, f"duplicate episode {key}"
            seen[key] = (int(task), int(length))
    return seen


def random_policy_return(task: str, episodes: int, seed: int) -> float:
    """The mean return of uniform random actions over `episodes` episodes (env seeds from `seed`)."""
    from envs import make_env

    returns = []
    for k in range(episodes):
        env = make_env(task, seed=seed * 7919 + k)
        env.reset(seed=seed * 7919 + k)
        rng = np.random.default_rng(k)
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
            total += float(r)
            done = term or trunc
        returns.append(total)
    return float(np.mean(returns))


def write_random_store(path, episodes_per_task=3, steps=30, tasks=(0, 1)):
    """A shard at `path` of real random-action episodes of cartpole-balance (task 0) and mw-reach (task 1),
    padded to the set's dims; returns the task set."""
    from distributed.episodes import EpisodeBuilder
    from distributed.replay.writer import ShardWriter
    from envs import load_task_set, make_padded_env

    ts = load_task_set("cartpole-balance,mw-reach")
    with ShardWriter(path, obs_dim=ts.max_obs_dim, action_dim=ts.max_action_dim, chunk_len=64) as w:
        for task in tasks:
            env = make_padded_env(ts, ts.names[task], seed=task)
            rng = np.random.default_rng(task)
            for _ in range(episodes_per_task):
                b = EpisodeBuilder(task, ts.max_obs_dim, ts.max_action_dim)
                b.start(env.reset()[0])
                for t in range(steps):
                    a = rng.uniform(-1, 1, ts.max_action_dim).astype(np.float32) * env.action_mask
                    obs, r, term, trunc, _ = env.step(a)
                    b.add(a, obs, r, term, trunc or t == steps - 1)
                e = b.finish()
                w.add_episode(e["obs"], e["action"], e["reward"], e["terminated"], e["truncated"], task)
    return ts
