"""Train an RLlib baseline on our task (or task set) and score it with our evaluator, into the
same run-directory layout as `distributed.loop` runs:

    <run_dir>/run.json          what the run is (kind "baseline", algo, task, seed, tasks)
    <run_dir>/config.yaml       the options; rllib_config.json: RLlib's full config
    <run_dir>/metrics.jsonl     "train" rows per RLlib iteration (env steps, RLlib's episode
                                return, losses), "eval" rows in our shape (distributed.evaluator.
                                eval_row), one "summary" row
    <run_dir>/eval.md, eval.csv, eval_tasks.png, learning_curve.png, summary.json
    <run_dir>/rllib_checkpoint/ RLlib's checkpoint at the end (checkpoint=true)

`step` is env steps (agent steps, after action repeat, over all envs) and `time` wall-clock
seconds since the run started (RLlib's set-up included), as in our runs.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distributed.config import RayOptions
from distributed.storage import check_writable, is_remote, local_staging, storage_path


@dataclass
class BaselineConfig:
    """A baseline run's options: a Hydra structured config (launch/baseline.py takes overrides of
    it). Construction checks the algorithm (normalised to its key), the task (set) and that the
    algorithm takes it, so a bad request fails before Ray starts."""

    algo: str = "sac"  # sac | ppo | dreamerv3 (dreamerv3: one task per run)
    task: str = "cartpole-swingup"  # a task, a task-set name (mt30, dmc-all, ...) or a quoted list: "task='a,b'"
    steps: int = 100_000  # env steps (agent steps after action repeat) over all envs, as launch/train.py counts
    seed: int = 1
    run_dir: str = "runs/baselines/${algo}/${task}/s${seed}"
    eval_freq: int = 10_000  # env steps between evaluations (our evaluator, our seeds: seed + 17)
    eval_episodes: int = 5
    eval_max_steps: int | None = None
    max_episode_steps: int | None = None  # cap training episodes too (smoke runs)
    training: dict[str, Any] = field(default_factory=dict)  # RLlib .training() overrides: +training.<key>=..
    model: dict[str, Any] = field(default_factory=dict)  # RLlib model_config overrides: +model.fcnet_hiddens=[64,64]
    num_env_runners: int = 0  # 0: sample in the driver process; N: N EnvRunner actors (1 CPU each)
    num_envs_per_env_runner: int = 1
    num_learners: int = 0  # 0: learn in the driver process; N: N Learner actors
    torch_threads: int = 1
    checkpoint: bool = True  # RLlib checkpoint in <run_dir>/rllib_checkpoint at the end
    wandb_mode: str = "offline"  # offline | online | disabled
    wandb_project: str = "latentfleet"
    wandb_group: str | None = None  # None: the task (set) name, so ours can join it too
    progress: bool = True
    ray: RayOptions = field(default_factory=RayOptions)

    def __post_init__(self):
        from distributed.baselines.algos import check_algorithm, check_task_set
        from envs import load_task_set

        if self.steps <= 0 or self.eval_freq <= 0 or self.eval_episodes <= 0:
            raise ValueError(
                f"steps, eval_freq and eval_episodes must be positive (got {self.steps}, "
                f"{self.eval_freq}, {self.eval_episodes})"
            )
        self.algo = check_algorithm(self.algo)
        check_task_set(self.algo, load_task_set(self.task))

    def identity(self) -> dict:
        return {"kind": "baseline", "algo": self.algo, "task": self.task, "seed": self.seed}


class BaselineRun:
    """One RLlib baseline run on the current Ray (the caller initialises it: embedded or cluster)."""

    def __init__(self, cfg: BaselineConfig):
        from agents.host import use_cpu_share
        from distributed.baselines.algos import SUPPORTED, build_algo_config
        from distributed.baselines.env import register_env
        from distributed.run_log import RunLogger
        from envs import load_task_set

        self.cfg = cfg
        use_cpu_share(cfg.torch_threads)
        self.task_set = load_task_set(cfg.task)  # the config checked that cfg.algo takes it
        self.spec = SUPPORTED[cfg.algo]
        self.run_dir = storage_path(cfg.run_dir)  # a directory, or an object-store URI (s3://bucket/prefix)
        self._check_run_dir()
        self.one_hot = len(self.task_set) > 1
        env_config = {
            "task_set": cfg.task,
            "seed": cfg.seed,
            "task_one_hot": self.one_hot,
            "max_episode_steps": cfg.max_episode_steps,
        }
        self.config = build_algo_config(
            cfg.algo,
            register_env(cfg.task),
            env_config,
            seed=cfg.seed,
            training=cfg.training,
            model=cfg.model,
            num_env_runners=cfg.num_env_runners,
            num_envs_per_env_runner=cfg.num_envs_per_env_runner,
            num_learners=cfg.num_learners,
        )
        self._write_configs()
        self.logger = RunLogger(
            self.run_dir,
            asdict(cfg),
            wandb_mode=cfg.wandb_mode,
            project=cfg.wandb_project,
            group=cfg.wandb_group or cfg.task,
            name=f"{cfg.algo}-{self.run_dir.name}",
        )
        self.algo = self.config.build_algo()  # inside the logged wall-clock: RLlib's set-up is part of its cost
        # written once RLlib has built: a run that failed to start leaves its directory reusable
        (self.run_dir / "run.json").write_text(
            json.dumps({**cfg.identity(), "tasks": list(self.task_set.names)}, indent=1)
        )
        self.env_steps, self.iterations = 0, 0
        self.last_eval: dict | None = None

    def _check_run_dir(self) -> None:
        meta = self.run_dir / "run.json"
        if meta.exists() or (self.run_dir / "metrics.jsonl").exists():
            raise ValueError(
                f"run directory {self.run_dir} already holds a run; baselines do not resume: choose another run_dir"
            )
        check_writable(self.cfg.run_dir, "run_dir")
        if not is_remote(self.run_dir):
            self.run_dir.mkdir(parents=True, exist_ok=True)

    def _write_configs(self) -> None:
        from omegaconf import OmegaConf

        (self.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(asdict(self.cfg))))
        (self.run_dir / "rllib_config.json").write_text(json.dumps(self.config.to_dict(), indent=1, default=str))

    def train(self) -> dict:
        cfg = self.cfg
        t0 = self.logger.start
        next_eval = cfg.eval_freq
        while self.env_steps < cfg.steps:
            result = self.algo.train()
            self.iterations += 1
            self.env_steps = int(
                result.get("num_env_steps_sampled_lifetime") or result["env_runners"]["num_env_steps_sampled_lifetime"]
            )
            self.logger.log(self.env_steps, train_row(result, self.iterations), kind="train")
            if self.env_steps >= next_eval or self.env_steps >= cfg.steps:
                self.evaluate()
                next_eval = (self.env_steps // cfg.eval_freq + 1) * cfg.eval_freq
                if cfg.progress:
                    last = self.last_eval
                    if last is None:
                        raise RuntimeError("evaluate() recorded no evaluation row")
                    print(
                        f"[{cfg.algo} {cfg.task}] env steps {self.env_steps}/{cfg.steps}, "
                        f"eval return {last['episode_return']:.1f}, {time.time() - t0:.0f} s",
                        flush=True,
                    )
        return self.finish()

    def evaluate(self) -> dict:
        """Our evaluator on the current policy: same envs, seeds (run seed + 17, as ours), episodes,
        metrics; logged as an "eval" row and eval.md/eval.csv."""
        import torch

        from distributed.baselines.algos import policy_fn
        from distributed.evaluator import eval_row, evaluate_policy, write_eval_table

        cfg = self.cfg
        act = policy_fn(
            self.algo.get_module(),
            cfg.algo,
            self.task_set,
            self.one_hot,
            num_rows=len(self.task_set) * cfg.eval_episodes,
        )
        with torch.random.fork_rng():  # DreamerV3 samples its posterior z: the same draws every evaluation,
            torch.manual_seed(10_000 + cfg.seed + 17)  # and RLlib's own RNG stream is left as it was
            result = evaluate_policy(
                act, self.task_set, episodes=cfg.eval_episodes, seed=cfg.seed + 17, max_steps=cfg.eval_max_steps
            )
        row = eval_row(result, iterations=self.iterations)
        self.logger.log(self.env_steps, row, kind="eval")
        write_eval_table(
            self.run_dir,
            result,
            {t.name: t.domain for t in self.task_set.tasks},
            self.env_steps,
            policy=f"RLlib {self.spec.rllib_name} policy",
        )
        self.last_eval = row
        return result

    def finish(self) -> dict:
        from distributed.run_log import plot_learning_curves

        wall = time.time() - self.logger.start
        summary = {
            "algo": self.cfg.algo,
            "task": self.cfg.task,
            "env_steps": self.env_steps,
            "iterations": self.iterations,
            "wall_s": wall,
            "env_steps_per_s": self.env_steps / max(wall, 1e-9),
            "episode_return": self.last_eval["episode_return"] if self.last_eval else None,
            "normalized_score": self.last_eval.get("normalized_score") if self.last_eval else None,
        }
        if self.cfg.checkpoint:
            with local_staging(self.run_dir / "rllib_checkpoint") as d:  # RLlib writes files; uploaded to a URI
                self.algo.save_to_path(str(Path(d).resolve()))
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        self.logger.log(self.env_steps, summary, kind="summary")
        plot_learning_curves(self.run_dir)
        return summary

    def close(self) -> None:
        self.algo.stop()
        self.logger.close()


def train_row(result: dict, iteration: int) -> dict:
    """What a "train" row keeps of an RLlib result: RLlib's own episode stats (exploration
    episodes), timing, and every scalar the learner reports (losses, learning rates, ...)."""
    runners = result.get("env_runners", {})
    row = {
        "iteration": iteration,
        "rllib_episode_return": runners.get("episode_return_mean"),
        "rllib_episode_len": runners.get("episode_len_mean"),
        "num_episodes": runners.get("num_episodes_lifetime"),
        "iteration_s": result.get("time_this_iter_s"),
    }
    learner = result.get("learners", {}).get("default_policy", {})
    for k, v in learner.items():
        if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool):
            row[f"learner/{k}"] = float(v)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items() if v is not None}


def run_baseline(cfg: BaselineConfig) -> dict:
    """Build, train, evaluate, write; returns the summary (Ray must be initialised)."""
    run = BaselineRun(cfg)
    try:
        return run.train()
    finally:
        run.close()
