"""Single-process training of one task (or a few) with the same plain classes the Ray job
uses: an EnvRunner collects, a Zarr replay shard stores, the Agent updates, the evaluator
scores. Run it under a debugger; `launch/train.py` wires a Hydra config to it."""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from agents.agent import Agent
from agents.batch import Batch
from agents.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from agents.config import AgentConfig, checked_options, make_agent_config
from distributed.env_runner import EnvRunner
from distributed.evaluator import eval_row, evaluate
from distributed.run_log import RunLogger, plot_learning_curves


@dataclass(frozen=True)
class TrainConfig:
    task: str = "cartpole-balance"  # a task, a comma-separated list, or a task-set name
    model_size: str = "1"
    steps: int = 100_000  # agent steps (after action repeat) over all envs
    seed: int = 1
    run_dir: str = "runs/default"
    envs_per_task: int = 1
    seed_steps: int | None = None  # random-action steps before learning (None: max(1000, 5 x episode length))
    utd: float = 1.0  # gradient updates per agent step
    batch_size: int = 256
    eval_freq: int = 10_000
    eval_episodes: int = 5
    eval_max_steps: int | None = None
    checkpoint_freq: int = 10_000
    diagnostics: bool = True  # per-task latent diagnostics at every evaluation, full report at the end
    diag_samples_per_task: int = 64
    diag_audit_states: int = 4
    device: str = "cpu"
    precision: str = "fp32"
    torch_threads: int = 1
    wandb_mode: str = "offline"
    wandb_project: str = "latentfleet"
    progress: bool = True
    chunk_len: int = 256  # replay chunk length (rows); small, since each flush pads its chunk
    planner: dict = field(default_factory=dict)
    optim: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)

    def identity(self) -> dict:
        """What must match for a run directory to be resumed by this config."""
        return {"task": self.task, "model_size": str(self.model_size), "seed": self.seed}


def train_config_from(values: dict) -> TrainConfig:
    """A TrainConfig from a plain mapping (e.g. a resolved Hydra config); unknown keys are an error."""
    values = checked_options(TrainConfig, {k: v for k, v in values.items() if k != "hydra"}, "training option")
    values["model_size"] = str(values.get("model_size", TrainConfig.model_size))
    for key in ("planner", "optim", "model"):
        values[key] = dict(values.get(key) or {})
    return TrainConfig(**values)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_seed_steps(episode_lengths: list[int]) -> int:
    """TD-MPC2's rule: max(1000, 5 episodes of the longest task)."""
    return max(1000, 5 * max(episode_lengths))


def build_agent_config(cfg: TrainConfig, task_set) -> AgentConfig:
    from embodiments.conditioning import descriptor_kwargs

    return make_agent_config(**descriptor_kwargs(cfg.model, task_set),
        obs_dim=task_set.max_obs_dim, action_dim=task_set.max_action_dim,
        episode_lengths=[t.episode_length for t in task_set.tasks], model_size=cfg.model_size,
        model=cfg.model, optim={"batch_size": cfg.batch_size, **cfg.optim}, planner=cfg.planner,
        device=cfg.device, precision=cfg.precision,
        can_terminate=task_set.can_terminate())


class Trainer:
    """Collect -> store -> update -> evaluate -> checkpoint, in one process."""

    def __init__(self, cfg: TrainConfig, *, agent: Agent | None = None, tasks: list[str] | None = None):
        """`agent` (optional) continues training an existing agent whose tasks are `cfg.task`'s set,
        by id (a finetune); `tasks` (optional) limits collection and evaluation to those tasks."""
        from distributed.replay.reader import ShardReader
        from distributed.replay.writer import ShardWriter
        from envs import load_task_set

        self.cfg = cfg
        torch.set_num_threads(cfg.torch_threads)
        self.run_dir = Path(cfg.run_dir)
        self.task_set = load_task_set(cfg.task)
        self.tasks = list(tasks or self.task_set.names)
        missing = [t for t in self.tasks if t not in self.task_set.names]
        if missing:
            raise ValueError(f"tasks {missing} are not in the task set {cfg.task!r}")
        if agent is not None and agent.cfg.model.num_tasks != len(self.task_set):
            raise ValueError(f"the given agent has {agent.cfg.model.num_tasks} tasks, the task set "
                             f"{cfg.task!r} {len(self.task_set)}")
        self.agent_cfg = agent.cfg if agent is not None else build_agent_config(cfg, self.task_set)
        self._check_run_dir()
        seed_everything(cfg.seed)
        self.agent = agent or Agent(self.agent_cfg, action_masks=torch.as_tensor(self.task_set.action_masks()))
        self.runner = EnvRunner(self.agent_cfg, self.task_set, self.tasks,
                                envs_per_task=cfg.envs_per_task, seed=cfg.seed, torch_threads=cfg.torch_threads)
        if agent is not None:
            self.runner.set_weights(self.agent.model.state_dict(), 0)
        self.seed_steps = cfg.seed_steps if cfg.seed_steps is not None else default_seed_steps(
            [self.task_set.spec(t).episode_length for t in self.tasks])
        replay_path = self.run_dir / "replay" / "shard-000"
        self.writer = ShardWriter(replay_path, obs_dim=self.task_set.max_obs_dim,
                                  action_dim=self.task_set.max_action_dim, chunk_len=cfg.chunk_len)
        self.reader = ShardReader(replay_path)
        self.masks = self.task_set.action_masks()
        self.rng = np.random.default_rng(cfg.seed)
        self.env_steps, self.updates, self.last_eval, self.episodes = 0, 0, None, 0
        self.logger = RunLogger(self.run_dir, asdict(cfg), wandb_mode=cfg.wandb_mode, project=cfg.wandb_project)
        self._resume()

    # -- run-directory identity and resume ------------------------------------------------------
    def _check_run_dir(self) -> None:
        meta = self.run_dir / "run.json"
        if meta.exists():
            saved = json.loads(meta.read_text())
            diffs = {k: (saved.get(k), v) for k, v in self.cfg.identity().items() if saved.get(k) != v}
            if diffs:
                raise ValueError(f"run directory {self.run_dir} belongs to another run ({diffs}: saved vs asked); "
                                 f"choose another run_dir or repeat the original settings")
        else:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            meta.write_text(json.dumps({**self.cfg.identity(), "tasks": list(self.task_set.names)}, indent=1))

    def _resume(self) -> None:
        if not (self.run_dir / CHECKPOINT_FILE).exists():
            return
        state = load_checkpoint(self.run_dir)
        self.agent.load_state_dict(state["agent"])
        extra = state["extra"]
        self.env_steps, self.updates = int(extra["env_steps"]), int(extra["updates"])
        self.episodes = int(extra.get("episodes", 0))
        self.rng.bit_generator.state = json.loads(extra["rng"])
        torch.set_rng_state(extra["torch_rng"])
        self.runner.set_weights(self.agent.model.state_dict(), self.updates)
        print(f"resumed {self.run_dir} at env step {self.env_steps}, update {self.updates}, "
              f"replay {self.reader.num_transitions} transitions")

    def save(self) -> None:
        self.writer.flush()
        save_checkpoint(self.run_dir, self.agent, {
            "env_steps": self.env_steps, "updates": self.updates, "episodes": self.episodes,
            "task_set": self.cfg.task, "tasks": list(self.task_set.names),
            "rng": json.dumps(self.rng.bit_generator.state), "torch_rng": torch.get_rng_state()})

    # -- loop ---------------------------------------------------------------------------------------
    def sample_batch(self) -> Batch:
        arrays = self.reader.sample(self.agent_cfg.optim.batch_size, self.agent_cfg.optim.horizon, self.rng,
                                    balance="task", action_masks=self.masks)
        return Batch.from_numpy(arrays, self.agent.device)

    def train(self) -> dict:
        cfg = self.cfg
        bar = _progress(cfg.steps, self.env_steps, cfg.progress)
        t_start, steps_at_start = time.time(), self.env_steps
        train_info: dict = {}
        while self.env_steps < cfg.steps:
            seeding = self.env_steps < self.seed_steps
            finished = self.runner.step(random_actions=seeding)
            n = len(self.runner)
            self.env_steps += n
            for ep in finished:
                self.writer.add_episode(ep["obs"], ep["action"], ep["reward"], ep["terminated"],
                                        ep["truncated"], ep["task"])
                self.episodes += 1
            if finished:
                self.writer.flush()
                self.reader.refresh()
                self.logger.log(self.env_steps, {"episode_return": float(np.mean([e["return"] for e in finished])),
                                                 "episode_success": float(np.mean([e["success"] for e in finished]))},
                                kind="collect")
            if not seeding and self.reader.num_episodes > 0:
                # update-to-data ratio over all steps: the first learning step catches up on the
                # seeding phase in one go, as TD-MPC2 does
                while self.updates < int(self.env_steps * cfg.utd):
                    train_info = self.agent.update(self.sample_batch())
                    self.updates += 1
                self.runner.set_weights(self.agent.model.state_dict(), self.updates)
            if self.env_steps % cfg.eval_freq < n or self.env_steps >= cfg.steps:
                self._evaluate()
                if cfg.diagnostics and self.updates > 0 and self.env_steps < cfg.steps:
                    self._diagnose()
                if train_info:
                    self.logger.log(self.env_steps, {**train_info, "updates": self.updates}, kind="train")
            if self.env_steps % cfg.checkpoint_freq < n or self.env_steps >= cfg.steps:
                self.save()
            if bar is not None:
                rate = (self.env_steps - steps_at_start) / max(time.time() - t_start, 1e-9)
                bar.set_postfix(sps=f"{rate:.1f}", upd=self.updates,
                                ret="-" if self.last_eval is None else f"{self.last_eval:.1f}", refresh=False)
                bar.update(n)
        if bar is not None:
            bar.close()
        if cfg.diagnostics and self.updates > 0:
            self._diagnose(out_dir=str(self.run_dir / "diagnostics"))
        plot_learning_curves(self.run_dir)
        self.logger.close()
        self.writer.close()
        return {"env_steps": self.env_steps, "updates": self.updates, "last_eval_return": self.last_eval,
                "wall_s": time.time() - t_start}

    def _diagnose(self, out_dir: str | None = None) -> None:
        from agents.diagnostics.report import write_report
        from agents.diagnostics.run import run_diagnostics, scalars, split_by_task

        cfg, H = self.cfg, self.agent_cfg.planner.horizon
        names = list(self.task_set.names)  # by task id; only self.tasks have data
        arrays = self.reader.sample(cfg.diag_samples_per_task * len(self.tasks), 2 * H, self.rng, balance="task",
                                    action_masks=self.masks)
        results = run_diagnostics(self.agent, split_by_task(arrays, names),
                                  obs_dims={t.name: t.obs_dim for t in self.task_set.tasks},
                                  max_samples=cfg.diag_samples_per_task, audit_states=cfg.diag_audit_states,
                                  seed=self.updates)
        self.logger.log(self.env_steps, scalars(results), kind="diag")
        if out_dir is not None:
            write_report(results, out_dir)

    def _evaluate(self) -> dict:
        result = evaluate(self.agent, self.task_set, self.tasks, episodes=self.cfg.eval_episodes, seed=self.cfg.seed + 17,
                          max_steps=self.cfg.eval_max_steps)
        row = eval_row(result, updates=self.updates)
        self.last_eval = row["episode_return"]
        self.logger.log(self.env_steps, row, kind="eval")
        return result


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, mininterval=1.0)
