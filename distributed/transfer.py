"""Zero-shot and few-shot transfer of a trained world model to bodies it never trained on.

Given a checkpoint (trained on a split's training tasks, e.g. `task=split:cartpole-length`) and
the split, for every held-out task:
  - zero-shot: add the task to the model with no training step and plan with the embedding from
    each available initialisation: `descriptor` (the learned descriptor map; needs
    task_conditioning descriptor/both), `nearest` (the embedding of the nearest training task by
    descriptor distance) and `mean` (the mean training embedding; both need a per-task table);
  - few-shot: finetune for `finetune_steps` agent steps on that task alone, from each init in
    `finetune_inits`, training only `finetune_params`, and evaluate again;
  - from scratch: a fresh single-task model of the same size trained for the same steps;
  - random: a uniform random policy;
  - in-distribution: the model on its nearest training task, the reference of the transfer
    ratio (zero-shot return / in-distribution return of the nearest training body).
Held-out tasks must never have reached training data: the checkpoint's task list and every
task id committed to the run's replay store are checked first.

Outputs in `out_dir`: transfer.md, transfer.csv, transfer.png, transfer.json, metrics.jsonl
(kind "transfer", one row per held-out task) and wandb (offline by default).
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import List, Optional

import numpy as np

from agents.config import PlannerConfig, discount_from_episode_length
from agents.host import use_cpu_share
from distributed.config import PlannerOverrides

ZERO_SHOT_INITS = ("descriptor", "nearest", "mean")


@dataclass
class TransferConfig:
    """The experiment's options: a Hydra structured config (launch/transfer.py takes overrides of it)."""
    checkpoint: str = "???"  # a run directory (its replay is checked for held-out task ids) or a checkpoint.pt
    split: str = "???"  # a split of envs/data/splits.json
    out_dir: str = "${checkpoint}/transfer"
    held_out: Optional[List[str]] = None  # a subset of the split's held-out tasks (None: all); quote names: '["a@b=1"]'
    episodes: int = 5  # evaluation episodes per task and setting
    eval_max_steps: Optional[int] = None  # cap evaluation episodes (smoke runs)
    finetune_steps: int = 2000  # K: agent steps of finetuning / from-scratch training per held-out task; 0: zero-shot
    finetune_inits: List[str] = field(default_factory=lambda: ["descriptor"])  # subset of ZERO_SHOT_INITS
    # Agent.parameter_groups() names, or all. The new task's embedding alone by default: on cartpole-length,
    # 2000 steps of training all parameters on one new body lost up to 290 return against zero-shot, the
    # embedding alone did not (bench/results/transfer_cartpole_length.md). A descriptor-only model has no
    # per-task embedding: use [descriptor_map] or [all] there.
    finetune_params: List[str] = field(default_factory=lambda: ["task_embedding"])
    finetune_seed_steps: int = 0  # random-action steps before the finetune plans (pretrained: none)
    scratch: bool = True  # also train a fresh single-task model for K steps
    scratch_seed_steps: int = 1000
    batch_size: Optional[int] = None  # None: the checkpoint's
    utd: float = 1.0
    planner: PlannerOverrides = field(default_factory=PlannerOverrides)
    seed: int = 1
    device: str = "cpu"
    torch_threads: int = 1
    wandb_mode: str = "offline"
    wandb_project: str = "latentfleet"
    progress: bool = True

    def __post_init__(self):
        if self.episodes < 1 or self.finetune_steps < 0:
            raise ValueError(f"episodes must be >= 1 and finetune_steps >= 0 (got {self.episodes}, "
                             f"{self.finetune_steps})")
        bad = [i for i in self.finetune_inits if i not in ZERO_SHOT_INITS]
        if bad:
            raise ValueError(f"finetune_inits {bad}: choose from {list(ZERO_SHOT_INITS)}")


# -- checks -----------------------------------------------------------------------------------
def stored_task_ids(run_dir: str | Path) -> dict[str, set[int]]:
    """{shard path: task ids ever committed to it} for every replay shard under `run_dir/replay`."""
    from distributed.replay.layout import read_state

    out = {}
    from distributed.storage import storage_path

    root = storage_path(run_dir) / "replay"
    for shard in sorted(p.parent for p in root.glob("**/zarr.json")) if root.exists() else []:
        try:
            _, commit = read_state(shard)
        except Exception:  # a sub-group of a shard, not a shard
            continue
        out[str(shard)] = {int(t) for t, n in commit.task_index.items() if n > 0}
    return out


def check_held_out_unseen(trained: list[str], held_out: list[str], run_dir: str | Path | None) -> dict:
    """Raise if a held-out task is among the trained tasks or its id was ever written to the run's
    replay; returns what was checked."""
    leaked = sorted(set(trained) & set(held_out))
    if leaked:
        raise ValueError(f"held-out tasks {leaked} were training tasks of this checkpoint: not a transfer test; "
                         f"train with task=split:<name> so held-out tasks never reach training")
    stored = stored_task_ids(run_dir) if run_dir is not None else {}
    for shard, ids in stored.items():
        bad = sorted(i for i in ids if not 0 <= i < len(trained))
        if bad:
            raise ValueError(f"replay shard {shard} holds task ids {bad} outside the checkpoint's "
                             f"{len(trained)} training tasks: data of untrained (possibly held-out) tasks")
    return {"shards": len(stored), "task_ids": sorted(set().union(*stored.values()))}


# -- the experiment ------------------------------------------------------------------------------
class TransferExperiment:
    def __init__(self, cfg: TransferConfig):
        from agents.checkpoint import load_checkpoint
        from embodiments.conditioning import conditioning_descriptors, nearest_tasks
        from envs.task_set import load_split
        from envs import load_task_set

        self.cfg = cfg
        use_cpu_share(cfg.torch_threads)
        self.split = load_split(cfg.split)
        state = load_checkpoint(cfg.checkpoint)
        extra = state["extra"]
        self.trained = list(extra.get("tasks") or [])
        if not self.trained:
            raise ValueError(f"{cfg.checkpoint}: the checkpoint records no task list; it was not written by "
                             f"launch/train.py or launch/mt80.py")
        self.held_out = list(self.split.held_out)
        if cfg.held_out is not None:
            from envs import task_spec

            asked = [task_spec(t).name for t in cfg.held_out]
            extra_tasks = [t for t in asked if t not in self.held_out]
            if extra_tasks:
                raise ValueError(f"{extra_tasks} are not held-out tasks of split {cfg.split!r}: {self.held_out}")
            self.held_out = asked
        run_dir = Path(cfg.checkpoint) if Path(cfg.checkpoint).is_dir() else Path(cfg.checkpoint).parent
        self.leak_check = check_held_out_unseen(self.trained, self.held_out, run_dir)
        self.task_set = load_task_set(",".join(self.trained + self.held_out))
        mc = state["agent"]["identity"]
        if (self.task_set.max_obs_dim, self.task_set.max_action_dim) != (mc["obs_dim"], mc["action_dim"]):
            raise ValueError(f"held-out tasks do not fit the checkpoint's padded dims ({mc['obs_dim']} obs, "
                             f"{mc['action_dim']} actions): {self.task_set.max_obs_dim}, "
                             f"{self.task_set.max_action_dim} with them")
        self.base = self._load()
        m = self.base.cfg.model
        self.zero_shot_inits = [i for i in ZERO_SHOT_INITS
                                if (i == "descriptor" and m.uses_descriptors) or (i != "descriptor" and m.uses_table)]
        bad = [i for i in cfg.finetune_inits if i not in self.zero_shot_inits]
        if bad:
            raise ValueError(f"finetune_inits {bad} are not available for a model with task_conditioning="
                             f"{m.task_conditioning!r}; available: {self.zero_shot_inits}")
        _planner(self.base, cfg.planner)  # fail before any run on overrides the planner refuses
        if cfg.finetune_steps > 0:  # fail before any long run on a bad parameter-group name
            self._load().set_trainable(list(cfg.finetune_params))
        self.train_desc = conditioning_descriptors(self.trained)
        self.held_desc = conditioning_descriptors(self.held_out)
        self.nearest = [int(i) for i in nearest_tasks(self.train_desc, self.held_desc)]
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)

    def _load(self):
        from agents.checkpoint import agent_from_checkpoint

        return agent_from_checkpoint(self.cfg.checkpoint, device=self.cfg.device)[0]

    def _base_batch_size(self) -> int:
        """The batch size the checkpoint's run trained with (its config.json), else the run default."""
        from distributed.config import RunConfig

        saved = Path(self.cfg.checkpoint) / "config.json"
        return int(json.loads(saved.read_text()).get("batch_size", RunConfig.batch_size)) if saved.exists() \
            else RunConfig.batch_size

    def with_held_out(self, init: str):
        """A fresh copy of the trained agent with every held-out task added (ids after the trained
        ones, in split order) by `init`."""
        agent = self._load()
        masks = self.task_set.action_masks()[len(self.trained):]
        discounts = [discount_from_episode_length(L) for L in self.task_set.episode_lengths()[len(self.trained):]]
        agent.add_tasks(masks, [float(d) for d in discounts], self.held_desc, init=init, nearest=self.nearest)
        return agent

    def _eval(self, agent, tasks: list[str]) -> dict[str, float]:
        from distributed.evaluator import evaluate

        pcfg = _planner(agent, self.cfg.planner)
        result = evaluate(agent, self.task_set, tasks, episodes=self.cfg.episodes, seed=self.cfg.seed + 17,
                          planner_cfg=pcfg, max_steps=self.cfg.eval_max_steps)
        return {t: r["return"] for t, r in result["tasks"].items()}

    def _random(self, tasks: list[str]) -> dict[str, float]:
        from distributed.evaluator import evaluate_policy

        rng = np.random.default_rng(self.cfg.seed)
        masks = self.task_set.action_masks()

        def act(obs, task_ids, rows):
            return rng.uniform(-1, 1, (len(rows), self.task_set.max_action_dim)).astype(np.float32) * masks[task_ids]

        result = evaluate_policy(act, self.task_set, tasks, episodes=self.cfg.episodes, seed=self.cfg.seed + 17,
                                 max_steps=self.cfg.eval_max_steps)
        return {t: r["return"] for t, r in result["tasks"].items()}

    def _train(self, run_dir: Path, task: str, steps: int, seed_steps: int, agent=None) -> tuple[float, float]:
        """Train `agent` (or a fresh single-task model) on `task` for `steps`; (eval return, wall s)."""
        from distributed.config import config_from_dict
        from distributed.loop import run

        c, base = self.cfg, self.base.cfg
        if agent is not None:  # a given agent plans with its own config: apply the overrides there too
            agent.cfg = replace(agent.cfg, planner=_planner(agent, c.planner))
        overrides = {"task": ",".join(self.task_set.names) if agent is not None else task,
                     "model_size": base.model.model_size, "steps": steps, "seed": c.seed, "run_dir": str(run_dir),
                     "seed_steps": seed_steps, "utd": c.utd, "batch_size": c.batch_size or self._base_batch_size(),
                     "eval_freq": max(steps, 1), "eval_episodes": c.episodes, "eval_max_steps": c.eval_max_steps,
                     "checkpoint_freq": max(steps, 1), "diagnostics": False, "device": c.device,
                     "precision": base.precision, "torch_threads": c.torch_threads, "wandb_mode": "disabled",
                     "progress": False}
        planner = {**asdict(base.planner), **_given(c.planner)}
        optim = asdict(base.optim)
        cfg = config_from_dict({**overrides, "backend": "local", "planner": planner, "optim": optim})
        start = time.time()
        summary = run(cfg, agent=agent, tasks=[task] if agent is not None else None)
        return float(summary["last_eval_return"]), time.time() - start

    def run(self) -> list[dict]:
        from distributed.run_log import RunLogger

        c = self.cfg
        log = RunLogger(self.out, asdict(c), wandb_mode=c.wandb_mode, project=c.wandb_project,
                        group=f"transfer-{c.split}", name=f"transfer-{c.split}")
        names = self.held_out
        near_names = [self.trained[i] for i in self.nearest]
        print(f"held-out {names}; nearest training tasks {near_names}; replay check {self.leak_check}")
        in_dist = self._eval(self.base, sorted(set(near_names)))
        zero = {init: self._eval(self.with_held_out(init), names) for init in self.zero_shot_inits}
        random = self._random(names)
        rows = []
        for k, task in enumerate(names):
            row = {"task": task, "nearest_training_task": near_names[k],
                   "in_distribution_return": in_dist[near_names[k]], "random_return": random[task]}
            for init in self.zero_shot_inits:
                row[f"zero_shot_{init}"] = zero[init][task]
                row[f"transfer_ratio_{init}"] = _ratio(zero[init][task], in_dist[near_names[k]])
            if c.finetune_steps > 0:
                for init in c.finetune_inits:
                    agent = self.with_held_out(init)
                    agent.set_trainable(list(c.finetune_params))
                    ret, wall = self._train(self.out / "finetune" / init / _slug(task), task, c.finetune_steps,
                                            c.finetune_seed_steps, agent=agent)
                    row[f"finetune_{init}_K"], row[f"finetune_{init}_wall_s"] = ret, wall
                if c.scratch:
                    ret, wall = self._train(self.out / "scratch" / _slug(task), task, c.finetune_steps,
                                            min(c.scratch_seed_steps, c.finetune_steps))
                    row["scratch_K"], row["scratch_wall_s"] = ret, wall
            rows.append(row)
            log.log(k, row, kind="transfer")
            print(json.dumps(row))
        write_transfer_table(self.out, rows, self.describe())
        log.close()
        return rows

    def describe(self) -> dict:
        c, m = self.cfg, self.base.cfg.model
        return {"checkpoint": c.checkpoint, "split": c.split, "task_conditioning": m.task_conditioning,
                "model_size": m.model_size, "trained_tasks": self.trained, "held_out": self.held_out,
                "episodes": c.episodes, "finetune_steps": c.finetune_steps, "finetune_params": list(c.finetune_params),
                "replay_check": self.leak_check}


def _planner(agent, overrides) -> PlannerConfig:
    """The agent's planner config with the non-None fields of `overrides` (a PlannerOverrides)."""
    return replace(agent.cfg.planner, **_given(overrides))


def _given(overrides) -> dict:
    return {k: v for k, v in asdict(overrides).items() if v is not None}


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if abs(b) > 1e-9 else None


def _slug(task: str) -> str:
    return task.replace("@", "_").replace("=", "").replace(",", "_")


def write_transfer_table(out: Path, rows: list[dict], meta: dict) -> None:
    """transfer.md / .csv / .json / .png from the per-task rows."""
    out = Path(out)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "transfer.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    (out / "transfer.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    fmt = lambda v: "-" if v is None else (f"{v:.3g}" if isinstance(v, float) and abs(v) < 10 else  # noqa: E731
                                          f"{v:.1f}" if isinstance(v, float) else str(v))
    lines = [f"# Transfer: split `{meta['split']}`, task_conditioning `{meta['task_conditioning']}`", "",
             f"checkpoint `{meta['checkpoint']}`, model {meta['model_size']}, {meta['episodes']} episodes per "
             f"cell, K = {meta['finetune_steps']} steps (finetune trains {meta['finetune_params']}); replay "
             f"check: {meta['replay_check']['shards']} shard(s), task ids {meta['replay_check']['task_ids']} "
             f"(training tasks only)", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    ratios = {c: [r[c] for r in rows if r.get(c) is not None] for c in cols if c.startswith("transfer_ratio_")}
    if ratios:
        lines += ["", "Mean transfer ratio (zero-shot / in-distribution return of the nearest training body): "
                  + ", ".join(f"{c[len('transfer_ratio_'):]} {np.mean(v):.3f}" for c, v in ratios.items() if v)]
    (out / "transfer.md").write_text("\n".join(lines) + "\n")
    _plot(out / "transfer.png", rows)


def _plot(path: Path, rows: list[dict]) -> None:
    from distributed.run_log import saved_figure

    series = [c for c in dict.fromkeys(k for r in rows for k in r)
              if c.startswith(("zero_shot_", "finetune_")) and not c.endswith("_wall_s")]
    series += [c for c in ("scratch_K", "random_return", "in_distribution_return") if any(c in r for r in rows)]
    x = np.arange(len(rows))
    width = 0.8 / max(len(series), 1)
    with saved_figure(path, figsize=(max(6, 1.8 * len(rows) + 3), 4)) as (_, ax):
        for j, s in enumerate(series):
            ax.bar(x + j * width, [r.get(s) or 0.0 for r in rows], width, label=s)
        ax.set_xticks(x + 0.4 - width / 2, [r["task"] for r in rows], rotation=15, fontsize=7)
        ax.set_ylabel("episode return")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="y")

