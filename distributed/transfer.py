"""Zero-shot and few-shot transfer of a trained world model to bodies it never trained on.

Given a checkpoint (trained on a split's training tasks, e.g. `task=split:cartpole-length`) and
the split, for every held-out task:
  - zero-shot: add the task to the model with no training step and plan with the embedding from
    each available initialisation: the learned feature map of the task's `descriptor`, `language`
    (the embedding of its text: its generated description, or free text given with
    `held_out_text`) or `descriptor+language`, whichever the model's task_conditioning reads;
    `nearest` (the embedding of the nearest training task by descriptor distance) and `mean` (the
    mean training embedding; both need a per-task table);
  - few-shot: finetune for `finetune_steps` agent steps on that task alone, from each init in
    `finetune_inits`, training only `finetune_params`, and evaluate again;
  - from scratch: a fresh single-task model of the same size trained for the same steps;
  - random: a uniform random policy;
  - in-distribution: the model on its nearest training task, the reference of the transfer
    ratio (zero-shot return / in-distribution return of the nearest training body).
Held-out tasks must never have reached training data: the checkpoint's task list and every
task id committed to the run's replay store are checked first.

`compare_checkpoints` (runs trained on the same training tasks with other task conditionings) adds
each one's feature-map zero-shot column to the same rows, so one run compares, per held-out task,
the nearest training task's embedding, the mean embedding, the descriptor, language and
descriptor+language; each transfer ratio divides by its own model's in-distribution return.

Outputs in `out_dir`: transfer.md, transfer.csv, transfer.png, transfer.json, metrics.jsonl
(kind "transfer", one row per held-out task) and wandb (offline by default).
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from agents.config import PlannerConfig, discount_from_episode_length
from agents.host import use_cpu_share
from distributed.config import PlannerOverrides
from distributed.storage import Location, StoragePath, check_writable, is_remote, storage_path, write_bytes

# the first three are the feature map's embedding (Agent.add_tasks init="descriptor"), named by what the
# map reads; a model offers the one its task_conditioning names
MAP_INITS = ("descriptor", "language", "descriptor+language")
ZERO_SHOT_INITS = (*MAP_INITS, "nearest", "mean")


@dataclass
class TransferConfig:
    """The experiment's options: a Hydra structured config (launch/transfer.py takes overrides of it)."""

    checkpoint: str = "???"  # a run directory (its replay is checked for held-out task ids) or a checkpoint.pt
    split: str = "???"  # a split of envs/data/splits.json
    out_dir: str = "${checkpoint}/transfer"
    held_out: list[str] | None = None  # a subset of the split's held-out tasks (None: all); quote names: '["a@b=1"]'
    # free text for the held-out tasks, one per `held_out` task, in its order: a language-conditioned model
    # embeds this instead of the generated description (python -m envs.describe <task> prints that)
    held_out_text: list[str] | None = None
    # more runs trained on the same tasks with other conditionings (descriptor, language, ...): each adds
    # the zero-shot column of its feature map; quote the list: 'compare_checkpoints=[runs/a,runs/b]'
    compare_checkpoints: list[str] | None = None
    episodes: int = 5  # evaluation episodes per task and setting
    eval_max_steps: int | None = None  # cap evaluation episodes (smoke runs)
    finetune_steps: int = 2000  # K: agent steps of finetuning / from-scratch training per held-out task; 0: zero-shot
    # more K values, each <= finetune_steps, at which the same finetune and from-scratch runs are also evaluated
    # (one run per init and task reaches every K: 'finetune_evals=[1000,2000]' with finetune_steps=5000)
    finetune_evals: list[int] | None = None
    # subset of ZERO_SHOT_INITS; None: the model's feature map (descriptor, language, ...), else nearest
    finetune_inits: list[str] | None = None
    # Agent.parameter_groups() names, or all. The new task's embedding alone by default: on cartpole-length,
    # 2000 steps of training all parameters on one new body lost up to 290 return against zero-shot, the
    # embedding alone did not (bench/results/transfer_cartpole_length_40k_one_seed.md). A descriptor-only model has no
    # per-task embedding: use [descriptor_map] or [all] there.
    finetune_params: list[str] = field(default_factory=lambda: ["task_embedding"])
    finetune_seed_steps: int = 0  # random-action steps before the finetune plans (pretrained: none)
    scratch: bool = True  # also train a fresh single-task model for K steps
    scratch_seed_steps: int = 1000
    batch_size: int | None = None  # None: the checkpoint's
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
            raise ValueError(
                f"episodes must be >= 1 and finetune_steps >= 0 (got {self.episodes}, {self.finetune_steps})"
            )
        bad = [i for i in self.finetune_inits or [] if i not in ZERO_SHOT_INITS]
        if bad:
            raise ValueError(f"finetune_inits {bad}: choose from {list(ZERO_SHOT_INITS)}")
        bad = [k for k in self.finetune_evals or [] if not 0 < k <= self.finetune_steps]
        if bad:
            raise ValueError(
                f"finetune_evals {bad}: each K must be in [1, finetune_steps={self.finetune_steps}]; "
                f"finetune_steps is the largest K"
            )

    def ks(self) -> list[int]:
        """Every K a finetune / from-scratch run is evaluated at, ascending (the last: finetune_steps)."""
        return sorted({*(self.finetune_evals or []), self.finetune_steps})


# -- checks -----------------------------------------------------------------------------------
def stored_task_ids(run_dir: Location) -> dict[str, set[int]]:
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


def check_held_out_unseen(trained: list[str], held_out: list[str], run_dir: Location | None) -> dict:
    """Raise if a held-out task is among the trained tasks or its id was ever written to the run's
    replay; returns what was checked."""
    leaked = sorted(set(trained) & set(held_out))
    if leaked:
        raise ValueError(
            f"held-out tasks {leaked} were training tasks of this checkpoint: not a transfer test; "
            f"train with task=split:<name> so held-out tasks never reach training"
        )
    stored = stored_task_ids(run_dir) if run_dir is not None else {}
    for shard, ids in stored.items():
        bad = sorted(i for i in ids if not 0 <= i < len(trained))
        if bad:
            raise ValueError(
                f"replay shard {shard} holds task ids {bad} outside the checkpoint's "
                f"{len(trained)} training tasks: data of untrained (possibly held-out) tasks"
            )
    return {"shards": len(stored), "task_ids": sorted(set().union(*stored.values()))}


# -- the experiment ------------------------------------------------------------------------------
class TransferExperiment:
    def __init__(self, cfg: TransferConfig):
        from agents.checkpoint import load_checkpoint
        from embodiments.conditioning import conditioning_descriptors, nearest_tasks, task_language
        from embodiments.text_encoder import encoder_name
        from envs import load_task_set
        from envs.describe import task_description
        from envs.task_set import load_split

        self.cfg = cfg
        use_cpu_share(cfg.torch_threads)
        self.split = load_split(cfg.split)
        state = load_checkpoint(cfg.checkpoint)
        extra = state["extra"]
        self.trained = list(extra.get("tasks") or [])
        if not self.trained:
            raise ValueError(
                f"{cfg.checkpoint}: the checkpoint records no task list; it was not written by "
                f"launch/train.py or launch/mt80.py"
            )
        self.held_out = list(self.split.held_out)
        if cfg.held_out is not None:
            from envs import task_spec

            asked = [task_spec(t).name for t in cfg.held_out]
            extra_tasks = [t for t in asked if t not in self.held_out]
            if extra_tasks:
                raise ValueError(f"{extra_tasks} are not held-out tasks of split {cfg.split!r}: {self.held_out}")
            self.held_out = asked
        if cfg.held_out_text is not None and (cfg.held_out is None or len(cfg.held_out_text) != len(self.held_out)):
            raise ValueError(
                f"held_out_text gives {len(cfg.held_out_text)} texts: give one per task of held_out "
                f"(held_out={cfg.held_out})"
            )
        self.leak_check = check_held_out_unseen(self.trained, self.held_out, _run_dir_of(cfg.checkpoint))
        self.task_set = load_task_set(",".join(self.trained + self.held_out))
        mc = state["agent"]["identity"]
        if (self.task_set.max_obs_dim, self.task_set.max_action_dim) != (mc["obs_dim"], mc["action_dim"]):
            raise ValueError(
                f"held-out tasks do not fit the checkpoint's padded dims ({mc['obs_dim']} obs, "
                f"{mc['action_dim']} actions): {self.task_set.max_obs_dim}, "
                f"{self.task_set.max_action_dim} with them"
            )
        self.base = self._load(cfg.checkpoint)
        m = self.base.cfg.model
        self.zero_shot_inits = [i for i in ZERO_SHOT_INITS if i == map_init(m) or (i not in MAP_INITS and m.uses_table)]
        # where each zero-shot column's model comes from: this checkpoint, then the compared ones' maps
        self.sources = {init: cfg.checkpoint for init in self.zero_shot_inits}
        models = {cfg.checkpoint: m}
        for path in cfg.compare_checkpoints or []:
            models[path] = self._compared_model(path)
            self.sources[map_init(models[path])] = path
        encoders = {mc.language_encoder for mc in models.values() if mc.uses_language}
        if len(encoders) > 1:
            raise ValueError(
                f"compare_checkpoints: the runs embed text with different encoders {sorted(encoders, key=str)}"
            )
        self.text_encoder = next(iter(encoders), None)
        uses_language = self.text_encoder is not None
        if uses_language and self.text_encoder != encoder_name():
            raise ValueError(
                f"the checkpoint's text embeddings come from {self.text_encoder}, this installation "
                f"has {encoder_name()}: held-out texts would be embedded differently; install the "
                f"versions the run used"
            )
        if cfg.held_out_text is not None and not uses_language:
            raise ValueError(
                f"held_out_text needs a language-conditioned model; this one has task_conditioning="
                f"{m.task_conditioning!r}"
            )
        self.finetune_inits = list(cfg.finetune_inits or [self.zero_shot_inits[0]])
        bad = [i for i in self.finetune_inits if i not in self.zero_shot_inits]
        if bad:
            raise ValueError(
                f"finetune_inits {bad} are not available for a model with task_conditioning="
                f"{m.task_conditioning!r}; available: {self.zero_shot_inits}"
            )
        _planner(self.base, cfg.planner)  # fail before any run on overrides the planner refuses
        if cfg.finetune_steps > 0:  # fail before any long run on a bad parameter-group name
            self._load().set_trainable(list(cfg.finetune_params))
        self.train_desc = conditioning_descriptors(self.trained)
        self.held_desc = conditioning_descriptors(self.held_out)
        self.nearest = [int(i) for i in nearest_tasks(self.train_desc, self.held_desc)]
        # the text each held-out task is given by, and its embedding (only a language model reads them)
        self.texts = {t: text for t, text in zip(self.held_out, cfg.held_out_text or [], strict=False)}
        self.held_lang = None
        if uses_language:
            self.texts = {t: self.texts.get(t) or task_description(t) for t in self.held_out}
            self.held_lang = task_language(self.held_out, cfg.device, self.texts)
        self.out = storage_path(cfg.out_dir)  # a directory, or an object-store URI (nothing written locally)
        check_writable(cfg.out_dir, "out_dir")
        if not is_remote(self.out):
            self.out.mkdir(parents=True, exist_ok=True)

    def _load(self, checkpoint: str | None = None):
        from agents.checkpoint import agent_from_checkpoint

        return agent_from_checkpoint(checkpoint or self.cfg.checkpoint, device=self.cfg.device)[0]

    def _compared_model(self, path: str):
        """Check a compared checkpoint (same training tasks, no held-out data, a feature map not
        already compared) and return its ModelConfig."""
        from agents.checkpoint import load_checkpoint

        trained = list(load_checkpoint(path)["extra"].get("tasks") or [])
        if trained != self.trained:
            raise ValueError(
                f"compare_checkpoints: {path} was trained on {trained}, not on this checkpoint's "
                f"training tasks {self.trained}; compare runs of the same split"
            )
        check_held_out_unseen(trained, self.held_out, _run_dir_of(path))
        agent = self._load(path)
        init = map_init(agent.cfg.model)
        if not init:
            raise ValueError(
                f"compare_checkpoints: {path} has task_conditioning="
                f"{agent.cfg.model.task_conditioning!r}, no feature map to compare; its nearest and "
                f"mean columns are this checkpoint's kind"
            )
        if init in self.sources:
            raise ValueError(
                f"compare_checkpoints: {path} and {self.sources[init]} both give the {init!r} column; "
                f"compare one run per conditioning"
            )
        _planner(agent, self.cfg.planner)
        return agent.cfg.model

    def _base_batch_size(self) -> int:
        """The batch size the checkpoint's run trained with (its config.json), else the run default."""
        from distributed.config import RunConfig

        saved = storage_path(self.cfg.checkpoint) / "config.json"
        return (
            int(json.loads(saved.read_text()).get("batch_size", RunConfig.batch_size))
            if saved.exists()
            else RunConfig.batch_size
        )

    def with_held_out(self, init: str):
        """A fresh copy of the trained agent that gives column `init` (this checkpoint's, or a compared
        one's for its map) with every held-out task added (ids after the trained ones, in split order)
        by `init`."""
        agent = self._load(self.sources[init])
        masks = self.task_set.action_masks()[len(self.trained) :]
        discounts = [discount_from_episode_length(L) for L in self.task_set.episode_lengths()[len(self.trained) :]]
        agent.add_tasks(
            masks,
            [float(d) for d in discounts],
            self.held_desc,
            language=self.held_lang,
            init="descriptor" if init in MAP_INITS else init,
            nearest=self.nearest,
        )
        return agent

    def _eval(self, agent, tasks: list[str]) -> dict[str, float]:
        from distributed.evaluator import evaluate

        pcfg = _planner(agent, self.cfg.planner)
        result = evaluate(
            agent,
            self.task_set,
            tasks,
            episodes=self.cfg.episodes,
            seed=self.cfg.seed + 17,
            planner_cfg=pcfg,
            max_steps=self.cfg.eval_max_steps,
        )
        return {t: r["return"] for t, r in result["tasks"].items()}

    def _random(self, tasks: list[str]) -> dict[str, float]:
        from distributed.evaluator import evaluate_policy

        rng = np.random.default_rng(self.cfg.seed)
        masks = self.task_set.action_masks()

        def act(obs, task_ids, rows):
            return rng.uniform(-1, 1, (len(rows), self.task_set.max_action_dim)).astype(np.float32) * masks[task_ids]

        result = evaluate_policy(
            act,
            self.task_set,
            tasks,
            episodes=self.cfg.episodes,
            seed=self.cfg.seed + 17,
            max_steps=self.cfg.eval_max_steps,
        )
        return {t: r["return"] for t, r in result["tasks"].items()}

    def _train(self, run_dir: StoragePath, task: str, steps: int, seed_steps: int, agent=None) -> tuple[dict, float]:
        """Train `agent` (or a fresh single-task model) on `task` for `steps`, evaluating at every K of
        the config; ({K: eval return}, wall s)."""
        from distributed.config import config_from_dict
        from distributed.loop import Loop

        c, base = self.cfg, self.base.cfg
        if agent is not None:  # a given agent plans with its own config: apply the overrides there too
            agent.cfg = replace(agent.cfg, planner=_planner(agent, c.planner))
        ks = c.ks()
        every = int(np.gcd.reduce(ks))  # evaluations at multiples of it: every K among them
        overrides = {
            "task": ",".join(self.task_set.names) if agent is not None else task,
            "model_size": base.model.model_size,
            "steps": steps,
            "seed": c.seed,
            "run_dir": str(run_dir),
            "seed_steps": seed_steps,
            "utd": c.utd,
            "batch_size": c.batch_size or self._base_batch_size(),
            "eval_freq": every,
            "eval_episodes": c.episodes,
            "eval_max_steps": c.eval_max_steps,
            "checkpoint_freq": max(steps, 1),
            "diagnostics": False,
            "device": c.device,
            "precision": base.precision,
            "torch_threads": c.torch_threads,
            "wandb_mode": "disabled",
            "progress": False,
        }
        planner = {**asdict(base.planner), **_given(c.planner)}
        optim = asdict(base.optim)
        cfg = config_from_dict({**overrides, "backend": "local", "planner": planner, "optim": optim})
        start = time.time()
        loop = Loop(cfg, agent=agent, tasks=[task] if agent is not None else None)
        try:
            summary = loop.run()
        finally:
            loop.shutdown()
        evals = sorted((int(e["step"]), float(e["episode_return"])) for e in loop.evals)
        # each K's evaluation: the first at or after K env steps (the last one is the run's final evaluation)
        out = {k: next((r for step, r in evals if step >= k), float(summary["last_eval_return"])) for k in ks}
        return out, time.time() - start

    def run(self) -> list[dict]:
        from distributed.run_log import RunLogger

        c = self.cfg
        log = RunLogger(
            self.out,
            asdict(c),
            wandb_mode=c.wandb_mode,
            project=c.wandb_project,
            group=f"transfer-{c.split}",
            name=f"transfer-{c.split}",
        )
        names = self.held_out
        near_names = [self.trained[i] for i in self.nearest]
        print(f"held-out {names}; nearest training tasks {near_names}; replay check {self.leak_check}")
        # each model's own return on the nearest training tasks: the reference of its transfer ratio
        in_dist = {
            path: self._eval(self.base if path == c.checkpoint else self._load(path), sorted(set(near_names)))
            for path in dict.fromkeys(self.sources.values())
        }
        zero = {init: self._eval(self.with_held_out(init), names) for init in self.sources}
        random = self._random(names)
        rows = []
        for k, task in enumerate(names):
            row = {
                "task": task,
                "nearest_training_task": near_names[k],
                "in_distribution_return": in_dist[c.checkpoint][near_names[k]],
                "random_return": random[task],
            }
            for init, path in self.sources.items():
                reference = in_dist[path][near_names[k]]
                if path != c.checkpoint:
                    row[f"in_distribution_return_{init}"] = reference
                row[f"zero_shot_{init}"] = zero[init][task]
                row[f"transfer_ratio_{init}"] = _ratio(zero[init][task], reference)
            if c.finetune_steps > 0:
                for init in self.finetune_inits:
                    agent = self.with_held_out(init)
                    agent.set_trainable(list(c.finetune_params))
                    rets, wall = self._train(
                        self.out / "finetune" / init / _slug(task),
                        task,
                        c.finetune_steps,
                        c.finetune_seed_steps,
                        agent=agent,
                    )
                    row.update(_by_k(f"finetune_{init}", rets, c.finetune_steps))
                    row[f"finetune_{init}_wall_s"] = wall
                if c.scratch:
                    rets, wall = self._train(
                        self.out / "scratch" / _slug(task),
                        task,
                        c.finetune_steps,
                        min(c.scratch_seed_steps, c.finetune_steps),
                    )
                    row.update(_by_k("scratch", rets, c.finetune_steps))
                    row["scratch_wall_s"] = wall
            rows.append(row)
            log.log(k, row, kind="transfer")
            print(json.dumps(row))
        write_transfer_table(self.out, rows, self.describe())
        log.close()
        return rows

    def describe(self) -> dict:
        c, m = self.cfg, self.base.cfg.model
        return {
            "checkpoint": c.checkpoint,
            "split": c.split,
            "task_conditioning": m.task_conditioning,
            "model_size": m.model_size,
            "trained_tasks": self.trained,
            "held_out": self.held_out,
            "episodes": c.episodes,
            "finetune_steps": c.finetune_steps,
            "finetune_evals": c.ks(),
            "finetune_params": list(c.finetune_params),
            "replay_check": self.leak_check,
            "compared": {i: p for i, p in self.sources.items() if p != c.checkpoint},
            "text_encoder": self.text_encoder,
            "held_out_texts": self.texts,
            "free_text": c.held_out_text is not None,
        }


def map_init(model_cfg) -> str:
    """The zero-shot column of a model's feature map: what it reads ("descriptor", "language",
    "descriptor+language"), "" for a table-only model."""
    return "+".join(
        p for p, used in (("descriptor", model_cfg.uses_descriptors), ("language", model_cfg.uses_language)) if used
    )


def _planner(agent, overrides) -> PlannerConfig:
    """The agent's planner config with the non-None fields of `overrides` (a PlannerOverrides)."""
    return replace(agent.cfg.planner, **_given(overrides))


def _given(overrides) -> dict:
    return {k: v for k, v in asdict(overrides).items() if v is not None}


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if abs(b) > 1e-9 else None


def _by_k(prefix: str, returns: dict, k_max: int) -> dict:
    """Row columns of one finetune / from-scratch run: `<prefix>_K` (the return at K = finetune_steps)
    and, when it was also evaluated at smaller K, `<prefix>_K<k>` for each."""
    out = {f"{prefix}_K": returns[k_max]}
    if len(returns) > 1:
        out.update({f"{prefix}_K{k}": r for k, r in returns.items()})
    return out


def _run_dir_of(checkpoint: str) -> StoragePath:
    """The run directory of `checkpoint` (a run directory, or its checkpoint.pt), local or a URI."""
    path = storage_path(checkpoint)
    return path if path.is_dir() else path.parent


def _slug(task: str) -> str:
    return task.replace("@", "_").replace("=", "").replace(",", "_")


def write_transfer_table(out: Location, rows: list[dict], meta: dict) -> None:
    """transfer.md / .csv / .json / .png from the per-task rows."""
    out = storage_path(out)  # a directory, or an object-store URI: each file one whole write
    cols = list(dict.fromkeys(k for r in rows for k in r))
    table = io.StringIO(newline="")
    w = csv.DictWriter(table, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    write_bytes(out / "transfer.csv", table.getvalue().encode())
    write_bytes(out / "transfer.json", json.dumps({"meta": meta, "rows": rows}, indent=1).encode())

    def fmt(v):
        return (
            "-"
            if v is None
            else (
                f"{v:.3g}"
                if isinstance(v, float) and abs(v) < 10
                # noqa: E731
                else f"{v:.1f}"
                if isinstance(v, float)
                else str(v)
            )
        )

    lines = [
        f"# Transfer: split `{meta['split']}`, task_conditioning `{meta['task_conditioning']}`",
        "",
        f"checkpoint `{meta['checkpoint']}`, model {meta['model_size']}, {meta['episodes']} episodes per "
        f"cell, K = {meta['finetune_steps']} steps (finetune trains {meta['finetune_params']}); replay "
        f"check: {meta['replay_check']['shards']} shard(s), task ids {meta['replay_check']['task_ids']} "
        f"(training tasks only)",
        "",
        *(
            [
                "Compared feature maps (each from its own run, its ratio over its own in-distribution return): "
                + ", ".join(f"`{i}` from `{p}`" for i, p in meta["compared"].items()),
                "",
            ]
            if meta.get("compared")
            else []
        ),
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    ratios = {c: [r[c] for r in rows if r.get(c) is not None] for c in cols if c.startswith("transfer_ratio_")}
    if ratios:
        lines += [
            "",
            "Mean transfer ratio (zero-shot / in-distribution return of the nearest training body): "
            + ", ".join(f"{c[len('transfer_ratio_') :]} {np.mean(v):.3f}" for c, v in ratios.items() if v),
        ]
    if meta.get("held_out_texts"):
        given = "free text" if meta.get("free_text") else "generated descriptions (python -m envs.describe)"
        lines += ["", f"Held-out tasks given by {given}, embedded by {meta['text_encoder']}:", ""]
        lines += [f"- `{task}`: {text}" for task, text in meta["held_out_texts"].items()]
    write_bytes(out / "transfer.md", ("\n".join(lines) + "\n").encode())
    _plot(out / "transfer.png", rows)


def _plot(path: StoragePath, rows: list[dict]) -> None:
    from distributed.run_log import saved_figure

    series = [
        c
        for c in dict.fromkeys(k for r in rows for k in r)
        if c.startswith(("zero_shot_", "finetune_")) and not c.endswith("_wall_s")
    ]
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
