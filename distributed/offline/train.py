"""Training from a replay store: offline (no env runners; TD-MPC2's mt30/mt80 setting) and
mixed (an offline store next to the online runners of the single-process Trainer).

    # offline: key=value options, the fields of OfflineConfig
    python -m distributed.offline.train data=<shard or dir of shards> task=mt80 model_size=5 steps=100000
    # mixed: the online single-task/multitask run of launch/train.py (its Hydra overrides) plus a
    # share of every batch from an offline store
    python -m distributed.offline.train mixed offline_data=<store> offline_ratio=0.5 task=walker-walk steps=50000
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from agents.agent import Agent
from agents.batch import BATCH_KEYS, Batch
from agents.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from agents.config import checked_options, make_agent_config
from distributed.run_log import RunLogger, plot_learning_curves
from distributed.trainer import TrainConfig, Trainer, seed_everything, train_config_from


@dataclass(frozen=True)
class OfflineConfig:
    data: tuple[str, ...] = ()  # shard paths, or directories holding shard-* subdirectories
    task: str | None = None  # task set whose task ids the store uses (masks, discounts, eval); None: from the store
    model_size: str = "1"
    steps: int = 100_000  # gradient updates
    seed: int = 1
    run_dir: str = "runs/offline"
    batch_size: int = 256
    balance: str = "task"  # "task" | "uniform" window sampling
    log_freq: int = 100
    eval_freq: int = 10_000  # updates; evaluation needs `task`
    eval_episodes: int = 0
    eval_max_steps: int | None = None
    checkpoint_freq: int = 10_000
    device: str = "cpu"
    precision: str = "fp32"
    torch_threads: int = 1
    wandb_mode: str = "offline"
    wandb_project: str = "latentfleet"
    progress: bool = True
    planner: dict = field(default_factory=dict)
    optim: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)


def offline_config_from(values: dict) -> OfflineConfig:
    """An OfflineConfig from a plain mapping; unknown keys are an error."""
    values = checked_options(OfflineConfig, dict(values), "offline training option")
    data = values.get("data", ())
    values["data"] = tuple([data] if isinstance(data, (str, Path)) else [str(d) for d in data])
    values["model_size"] = str(values.get("model_size", OfflineConfig.model_size))
    for key in ("planner", "optim", "model"):
        values[key] = dict(values.get(key) or {})
    return OfflineConfig(**values)


def shard_paths(data) -> list[Path]:
    """Shard directories named by `data`: a shard itself, or a directory of shard-* (e.g. run/replay)."""
    paths = []
    for d in ([data] if isinstance(data, (str, Path)) else data):
        d = Path(d)
        if (d / "zarr.json").exists():
            paths.append(d)
        else:
            found = sorted(p for p in d.glob("*") if (p / "zarr.json").exists()) if d.is_dir() else []
            if not found:
                raise FileNotFoundError(f"{d} is neither a replay shard nor a directory of shards")
            paths.extend(found)
    if not paths:
        raise ValueError("no replay data given (data=<shard or directory of shards>)")
    return paths


def open_store(data):
    """A sampler over the shards named by `data` (ShardReader for one, MultiShardSampler for many)."""
    from distributed.replay.multi import MultiShardSampler
    from distributed.replay.reader import ShardReader

    paths = shard_paths(data)
    return ShardReader(paths[0]) if len(paths) == 1 else MultiShardSampler(paths)


def store_dims(data) -> tuple[int, int]:
    from distributed.replay.layout import read_state

    dims = {(i.obs_dim, i.action_dim) for i in (read_state(p)[0] for p in shard_paths(data))}
    if len(dims) > 1:
        raise ValueError(f"shards disagree on (obs_dim, action_dim): {sorted(dims)}")
    return dims.pop()


def store_episode_lengths(data) -> dict[int, int]:
    """task id -> median steps per live episode (T, not T+1), read from the episode indexes."""
    import zarr

    from distributed.replay.layout import EPISODE_GROUP, read_state

    lengths: dict[int, list] = {}
    for p in shard_paths(data):
        _, c = read_state(p)
        g = zarr.open_group(str(p), mode="r")[EPISODE_GROUP]
        for t, n in zip(g["task"][c.first_episode:c.episodes], g["length"][c.first_episode:c.episodes]):
            lengths.setdefault(int(t), []).append(int(n) - 1)
    return {t: int(np.median(v)) for t, v in sorted(lengths.items())}


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
    out["action_mask"] = action_masks[out["task"]]
    return out


class OfflineTrainer:
    """Sample -> update -> log -> (evaluate) -> checkpoint, from a replay store, no env runners."""

    def __init__(self, cfg: OfflineConfig):
        self.cfg = cfg
        torch.set_num_threads(cfg.torch_threads)
        self.run_dir = Path(cfg.run_dir)
        self.store = open_store(cfg.data)
        obs_dim, action_dim = store_dims(cfg.data)
        lengths = store_episode_lengths(cfg.data)
        self.task_set = None
        if cfg.task:
            from envs import load_task_set

            self.task_set = load_task_set(cfg.task)
            obs_dim, action_dim = self._check_against_task_set(obs_dim, action_dim, lengths)
            episode_lengths = [t.episode_length for t in self.task_set.tasks]
            self.masks = self.task_set.action_masks().astype(np.float32)
        else:
            num_tasks = max(lengths) + 1
            episode_lengths = [lengths.get(t, max(lengths.values())) for t in range(num_tasks)]
            self.masks = np.ones((num_tasks, action_dim), np.float32)
        from embodiments.conditioning import descriptor_kwargs

        if self.task_set is None and (cfg.model or {}).get("task_conditioning", "table") != "table":
            raise ValueError("descriptor task conditioning needs task names: give task=<the data's task set>")
        self.agent_cfg = make_agent_config(
            **(descriptor_kwargs(cfg.model, self.task_set) if self.task_set is not None else {}),
            obs_dim=obs_dim, action_dim=action_dim, episode_lengths=episode_lengths, model_size=cfg.model_size,
            model=cfg.model, optim={"batch_size": cfg.batch_size, **cfg.optim}, planner=cfg.planner,
            device=cfg.device, precision=cfg.precision,
            can_terminate=self.task_set.can_terminate() if self.task_set is not None else None)
        seed_everything(cfg.seed)
        self.agent = Agent(self.agent_cfg, action_masks=torch.as_tensor(self.masks))
        self.rng = np.random.default_rng(cfg.seed)
        self.updates = 0
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logger = RunLogger(self.run_dir, {**asdict(cfg), "mode": "offline"}, wandb_mode=cfg.wandb_mode,
                                project=cfg.wandb_project)
        self._resume()

    def _check_against_task_set(self, obs_dim, action_dim, lengths) -> tuple[int, int]:
        ts = self.task_set
        if obs_dim > ts.max_obs_dim or action_dim > ts.max_action_dim:
            raise ValueError(f"store has obs_dim={obs_dim}, action_dim={action_dim}; task set {ts.name!r} has "
                             f"{ts.max_obs_dim}, {ts.max_action_dim}: the store belongs to another task set")
        bad = [t for t in lengths if t >= len(ts.tasks)]
        if bad:
            raise ValueError(f"store holds task ids {bad}; task set {ts.name!r} has {len(ts.tasks)} tasks")
        return ts.max_obs_dim, ts.max_action_dim

    def _resume(self) -> None:
        if not (self.run_dir / CHECKPOINT_FILE).exists():
            return
        state = load_checkpoint(self.run_dir)
        self.agent.load_state_dict(state["agent"])
        self.updates = int(state["extra"]["updates"])
        self.rng.bit_generator.state = json.loads(state["extra"]["rng"])
        print(f"resumed {self.run_dir} at update {self.updates}")

    def save(self) -> None:
        save_checkpoint(self.run_dir, self.agent, {"updates": self.updates, "mode": "offline",
                                                   "data": list(self.cfg.data), "task_set": self.cfg.task,
                                                   "rng": json.dumps(self.rng.bit_generator.state)})

    def sample_batch(self) -> Batch:
        arrays = self.store.sample(self.cfg.batch_size, self.agent_cfg.optim.horizon, self.rng,
                                   balance=self.cfg.balance)
        return Batch.from_numpy(fit_batch(arrays, self.agent_cfg.model.obs_dim, self.masks), self.agent.device)

    def train(self) -> dict:
        """Run until cfg.steps updates; returns {updates, wall_s, loss_first, loss_last} (mean
        total_loss of the first and last logging windows of this call)."""
        cfg, t0 = self.cfg, time.time()
        bar = None
        if cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=self.updates, unit="upd", dynamic_ncols=True, mininterval=1.0)
        window, windows = [], []
        while self.updates < cfg.steps:
            info = self.agent.update(self.sample_batch())
            self.updates += 1
            window.append(info["total_loss"])
            if self.updates % cfg.log_freq == 0 or self.updates == cfg.steps:
                windows.append(float(np.mean(window)))
                self.logger.log(self.updates, {**info, "total_loss_mean": windows[-1], "updates": self.updates,
                                               "updates_per_s": self.updates / max(time.time() - t0, 1e-9)})
                window = []
            if self.task_set is not None and cfg.eval_episodes > 0 and (
                    self.updates % cfg.eval_freq == 0 or self.updates == cfg.steps):
                self._evaluate()
            if self.updates % cfg.checkpoint_freq == 0:
                self.save()
            if bar is not None:
                bar.update(1)
                if windows:
                    bar.set_postfix(loss=f"{windows[-1]:.3f}", refresh=False)
        self.save()
        if bar is not None:
            bar.close()
        plot_learning_curves(self.run_dir)
        self.logger.close()
        return {"updates": self.updates, "wall_s": time.time() - t0,
                "loss_first": windows[0] if windows else None, "loss_last": windows[-1] if windows else None}

    def _evaluate(self) -> dict:
        from distributed.evaluator import evaluate

        result = evaluate(self.agent, self.task_set, episodes=self.cfg.eval_episodes, seed=self.cfg.seed + 17,
                          max_steps=self.cfg.eval_max_steps)
        per_task = result["tasks"]
        row = {"episode_return": float(np.mean([r["return"] for r in per_task.values()])), "updates": self.updates,
               **{f"return/{k}": v["return"] for k, v in per_task.items()},
               **{f"success/{k}": v["success"] for k, v in per_task.items()}}
        if result["normalized_score"] is not None:
            row["normalized_score"] = result["normalized_score"]
        self.logger.log(self.updates, row, kind="eval")
        return result


class MixedTrainer(Trainer):
    """The single-process online Trainer, with a fixed share of every batch drawn from an offline
    store: `offline_ratio` of the batch (rounded) from `offline_data`, the rest from the runners'
    own replay. The offline store must use the task set's task ids (dims may be narrower)."""

    def __init__(self, cfg: TrainConfig, offline_data, offline_ratio: float):
        if not 0.0 <= offline_ratio <= 1.0:
            raise ValueError(f"offline_ratio must be in [0, 1], got {offline_ratio}")
        super().__init__(cfg)
        self.offline = open_store(offline_data)
        self.offline_ratio = float(offline_ratio)
        obs_dim, action_dim = store_dims(offline_data)
        if obs_dim > self.task_set.max_obs_dim or action_dim > self.task_set.max_action_dim:
            raise ValueError(f"offline store has obs_dim={obs_dim}, action_dim={action_dim}; task set "
                             f"{self.task_set.name!r} has {self.task_set.max_obs_dim}, {self.task_set.max_action_dim}")
        bad = [t for t in store_episode_lengths(offline_data) if t >= len(self.task_set.tasks)]
        if bad:
            raise ValueError(f"offline store holds task ids {bad}; task set {self.task_set.name!r} has "
                             f"{len(self.task_set.tasks)} tasks")

    def sample_batch(self) -> Batch:
        B, H = self.agent_cfg.optim.batch_size, self.agent_cfg.optim.horizon
        n_off = int(round(self.offline_ratio * B))
        parts = []
        if n_off < B:
            parts.append(self.reader.sample(B - n_off, H, self.rng, balance="task", action_masks=self.masks))
        if n_off:
            off = self.offline.sample(n_off, H, self.rng, balance="task")
            parts.append(fit_batch(off, self.agent_cfg.model.obs_dim, np.asarray(self.masks, np.float32)))
        # time-major arrays join along the batch axis 1, per-sample arrays along axis 0
        arrays = {k: np.concatenate([p[k] for p in parts], axis=0 if k in ("task", "action_mask") else 1)
                  for k in BATCH_KEYS}
        return Batch.from_numpy(arrays, self.agent.device)


def main_mixed(argv: list[str]) -> None:
    from distributed.sweep import compose_train_config

    options = dict(a.split("=", 1) for a in argv if a.startswith(("offline_data=", "offline_ratio=")))
    if "offline_data" not in options:
        raise SystemExit("mixed mode needs offline_data=<store> (and offline_ratio=<0..1>, default 0.5)")
    overrides = [a for a in argv if not a.startswith(("offline_data=", "offline_ratio="))]
    cfg = compose_train_config(overrides)
    trainer = MixedTrainer(train_config_from(cfg), options["offline_data"], float(options.get("offline_ratio", 0.5)))
    summary = trainer.train()
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in summary.items()})


def main(argv: list[str]) -> None:
    import ast

    if argv[:1] == ["mixed"]:
        return main_mixed(argv[1:])

    values = {}
    for arg in argv:
        key, sep, raw = arg.partition("=")
        if not sep:
            raise SystemExit(f"arguments are key=value (fields of OfflineConfig), got {arg!r}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if "." in key:  # planner.num_samples=64 -> planner={"num_samples": 64}
            head, sub = key.split(".", 1)
            values.setdefault(head, {})[sub] = value
        else:
            values[key] = value
    summary = OfflineTrainer(offline_config_from(values)).train()
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items()})


if __name__ == "__main__":
    main(sys.argv[1:])
