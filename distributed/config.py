"""The typed configuration of a distributed run (built once from Hydra, never mutated)."""
from __future__ import annotations

from dataclasses import dataclass, field

from agents.config import checked_options


@dataclass(frozen=True)
class RunConfig:
    task_set: str = "mt80"
    model_size: str = "5"
    steps: int = 1_000_000  # agent steps over all tasks
    seed: int = 1
    run_dir: str = "runs/mt80"
    # collection
    num_runners: int = 2
    envs_per_task: int = 1
    collect_steps: int = 10  # env steps per runner call (per env)
    max_episode_steps: int | None = None  # truncate episodes early (smoke presets only)
    seed_steps: int | None = None  # random-action agent steps before learning (None: TD-MPC2 rule)
    # replay
    num_shards: int | None = None  # None: one per runner
    chunk_len: int = 1024
    shard_flush_s: float = 10.0
    shard_cache_mb: int = 256
    # offline data (TD-MPC2's mt80 setting): a replay store to learn from; with num_runners=0 the
    # run is offline (steps, eval_freq and checkpoint_freq then count updates), else mixed
    offline_data: str | None = None
    offline_ratio: float = 0.5  # share of every batch drawn from offline_data in a mixed run
    # learning
    num_learners: int = 1
    batch_size: int = 256
    utd: float = 1.0  # updates per agent step (samples-per-insert)
    max_lag: int = 200  # hold collection when learners are this many updates behind
    updates_per_round: int = 20
    publish_every: int = 20  # publish weights to runners every K updates
    # evaluation / checkpoints
    eval_freq: int = 50_000
    eval_episodes: int = 1
    eval_max_steps: int | None = None
    checkpoint_freq: int = 50_000
    diag_freq: int = 0  # per-task latent diagnostics on rank 0 every this many env steps (0: only at the end)
    diag_samples_per_task: int = 64
    diag_audit_states: int = 4
    # resources (per actor)
    cpus_per_runner: float = 1.0
    gpus_per_runner: float = 0.0
    cpus_per_learner: float = 1.0
    gpus_per_learner: float = 0.0
    cpus_per_shard: float = 0.1
    cpus_per_evaluator: float = 1.0
    device: str = "cpu"  # learner device: cpu | cuda
    runner_device: str = "cpu"
    precision: str = "fp32"
    # logging
    wandb_mode: str = "offline"
    wandb_project: str = "latentfleet"
    progress: bool = True
    planner: dict = field(default_factory=dict)
    optim: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)

    def identity(self) -> dict:
        """What must match for a run directory to be resumed."""
        return {"task_set": self.task_set, "model_size": str(self.model_size), "seed": self.seed,
                "num_shards": self.shards}

    @property
    def shards(self) -> int:
        return self.num_shards or self.num_runners


def run_config_from(values: dict) -> RunConfig:
    """A RunConfig from a plain mapping (a resolved Hydra config); unknown keys are an error."""
    values = checked_options(RunConfig, {k: v for k, v in values.items() if k not in ("hydra", "preset")},
                             "run option")
    values["model_size"] = str(values.get("model_size", RunConfig.model_size))
    for key in ("planner", "optim", "model"):
        values[key] = {k: v for k, v in dict(values.get(key) or {}).items() if v is not None}
    return RunConfig(**values)
