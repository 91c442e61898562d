"""The one typed configuration of every run, built once and never mutated.

`RunConfig` is a Hydra structured config registered in the ConfigStore as `run_schema`; the YAML
files in configs/ hold only presets and experiment overrides on top of it. OmegaConf checks
types and keys while composing (`steps=abc` or `planner.num_samples=many` fail at once, naming
the key), `compose()` returns the frozen dataclass, and `check_config` refuses out-of-range values
before anything starts. Every mode (one process, offline, mixed, Ray) reads the same tree:

    backend=local   one process: an in-process env runner, learner and evaluator, run in turn
    backend=ray     Ray actors: env runners, replay-shard actors, a learner group, an evaluator
    num_runners=0   no collection: offline training from `offline_data` (steps count updates)
    offline_data=.. with runners: a mixed run, `offline_ratio` of every batch from that store
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TypeAlias, TypeVar

from agents.config import (
    COMPILE_MODES,
    AgentConfig,
    ModelConfig,
    OptimConfig,
    PlannerConfig,
    make_agent_config,
    model_preset,
)
from embodiments.constraints import ConstraintOptions

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
BACKENDS = ("local", "ray")
BALANCES = ("uniform", "task", "sqrt")
_Schema = TypeVar("_Schema")


class ConfigError(ValueError):
    """A run that cannot start as configured; raised before anything is written or started."""


def _options_of(cls, exclude: tuple[str, ...] = (), optional: bool = False):
    """A mutable (Hydra-mergeable) dataclass with the fields of the frozen agent config `cls`:
    same names, types and defaults, so nothing is listed twice. With `optional`, every field
    defaults to None (None: keep the model preset's value)."""
    hints = typing.get_type_hints(cls)
    fields = [
        (f.name, Optional[hints[f.name]], field(default=None))  # noqa: UP045 (a type built at run time)
        if optional
        else (f.name, hints[f.name], field(default=f.default))
        for f in dataclasses.fields(cls)
        if f.name not in exclude
    ]
    return dataclasses.make_dataclass(cls.__name__.replace("Config", "Options"), fields)


if TYPE_CHECKING:
    # _options_of builds these classes at run time, which a type checker cannot follow. PlannerOptions and
    # OptimOptions have exactly the agent config's fields and types (mutable, where those are frozen); the
    # optional ones (every field may be None, some left out) are typed loosely.
    PlannerOptions = PlannerConfig
    OptimOptions = OptimConfig
    PlannerOverrides: TypeAlias = Any
    ModelOptions: TypeAlias = Any
else:
    PlannerOptions = _options_of(PlannerConfig)
    PlannerOverrides = _options_of(PlannerConfig, optional=True)  # for a saved model: None keeps its value
    OptimOptions = _options_of(OptimConfig)
    ModelOptions = _options_of(
        ModelConfig,
        optional=True,
        exclude=(
            "obs_dim",
            "action_dim",
            "num_tasks",
            "model_size",
            "task_descriptors",
            "descriptor_mean",
            "descriptor_std",
            "task_language",
            "language_encoder",
            "can_terminate",
        ),
    )


@dataclass
class RayOptions:
    address: str | None = None  # None: RAY_ADDRESS / the `ray job submit` cluster, else an embedded local Ray
    num_cpus: int | None = None  # embedded Ray only (None: all cores)
    temp_dir: str | None = None  # embedded Ray only


@dataclass
class RunConfig:
    task: str = "cartpole-balance"  # a task, a comma-separated list, a task-set name (mt80) or split:<name>
    # comma-separated names from task's set: collect and evaluate only these; the model keeps the whole set's
    # task ids and dims (offline data that covers part of a set, or a cheaper evaluation of a set's model)
    only_tasks: str | None = None
    model_size: str = "1"  # 1 | 5 | 19 | 48 | 317 (TD-MPC2's presets) | tiny (tests, CI)
    steps: int = 100_000  # env (agent) steps over all envs; updates when offline (num_runners=0)
    seed: int = 1  # seeds the model's initialisation, the environments and replay sampling (evaluation: seed + 17)
    tag: str = ""  # set by presets: part of the default run directory, so presets never share one
    # a path, a shared file-system path, or an object-store URI (s3://bucket/prefix): distributed/storage.py;
    # a relative path inside a `ray job submit` package folder goes under ~/latentfleet-runs (run_location)
    run_dir: str = "runs/${task}-${model_size}-${tag}s${seed}"
    storage_shared: bool = False  # run_dir is a path every node of a multi-node Ray cluster sees (NFS, ...)
    backend: str = "local"  # local (one process) | ray
    # collection
    num_runners: int = 1  # env-runner actors (ray); local: 1 in-process runner, or 0 (offline)
    envs_per_task: int = 1  # environments per task in a runner, stepped and planned as one batch
    collect_steps: int = 1  # env steps per runner call (per env) between learning rounds
    max_episode_steps: int | None = None  # truncate episodes early (smoke presets only)
    partial_episodes: bool = False  # store running episodes' new windows after every collect call (pieces
    #                                 overlapping by H rows), not only whole episodes when they end
    seed_steps: int | None = None  # random-action steps before learning (None: see default_seed_steps)
    seed_episodes: int = 1  # every env's first episodes act at random, and learning waits until every task has
    #                         this many per env (1: every task has data before the first update)
    # replay
    num_shards: int | None = None  # ray: None = one per runner; local: always 1
    chunk_len: int = 256  # replay rows per Zarr chunk: the unit of a write, a read and of damage
    shard_flush_s: float = 10.0  # a shard commits what it holds at least this often (seconds)
    shard_cache_mb: int = 256  # RAM of a replay reader for decoded chunks (MiB)
    offline_data: str | None = None  # a replay store (shard or directory of shards), opened read-only
    offline_ratio: float = 0.5  # share of every batch from offline_data when runners also collect
    # learning
    num_learners: int = 1  # learner ranks training one model data-parallel (ray)
    batch_size: int = 256  # global: each of num_learners ranks samples batch_size / num_learners
    balance: str = "task"  # uniform | task | sqrt (see distributed/replay/sampler.py plan_draws)
    utd: float = 1.0  # gradient updates per stored env step (samples per insert)
    max_lag: int = 200  # hold collection when learners are this many updates behind the ratio
    updates_per_round: int = 1  # updates per learner call between other work
    publish_every: int = 1  # publish weights to runners every K updates (ray; one process shares the model)
    # evaluation, diagnostics, checkpoints (in env steps; in updates when offline)
    eval_freq: int = 10_000  # evaluate every this many env steps (updates when offline)
    eval_episodes: int = 5  # episodes per task in each evaluation
    eval_max_steps: int | None = None  # cut evaluation episodes at this many steps (None: the task's own length)
    checkpoint_freq: int = 10_000  # write checkpoint.pt every this many env steps (updates when offline)
    diag_freq: int = 0  # per-task latent diagnostics every N (0: only the final report)
    diagnostics: bool = True  # write the final diagnostics report
    diag_samples_per_task: int = 64  # latent states per task in the diagnostics (geometry, dynamics)
    diag_audit_states: int = 4  # states per task whose plans the diagnostics audit (terminal value, horizon)
    # resources
    cpus_per_runner: float = 1.0  # Ray CPUs of an env-runner actor (also its torch threads)
    gpus_per_runner: float = 0.0  # Ray GPUs of an env-runner actor (a fraction shares a GPU)
    cpus_per_learner: float = 1.0  # Ray CPUs of a learner rank (also its torch threads)
    gpus_per_learner: float = 0.0  # Ray GPUs of a learner rank (a fraction shares a GPU)
    cpus_per_shard: float = 0.1  # Ray CPUs of a replay shard actor
    cpus_per_evaluator: float = 1.0  # Ray CPUs of the evaluator actor (also its torch threads)
    # custom Ray resources the evaluator needs (`+resources_per_evaluator.eval_node=1`: only on nodes started with
    # `--resources='{"eval_node": 1}'`), to keep it on a kind of node, and off the learners' nodes
    resources_per_evaluator: dict[str, float] = field(default_factory=dict)
    torch_threads: int = 1  # the local backend's torch threads (ray actors use their CPU share)
    device: str = "cpu"  # learner device: cpu | cuda | cuda:1
    runner_device: str | None = None  # None: as device
    precision: str = "fp32"  # fp32 | bf16 (bf16 only where the device has native bf16: else fp32, one warning)
    compile_update: str = "off"  # torch.compile the update: off | default | reduce-overhead (CUDA graphs, GPU only)
    # logging
    wandb_mode: str = "offline"  # offline | online | disabled
    wandb_project: str = "latentfleet"  # the wandb project runs log to
    progress: bool = True  # a progress bar on the console
    planner: PlannerOptions = field(default_factory=PlannerOptions)
    optim: OptimOptions = field(default_factory=OptimOptions)
    model: ModelOptions = field(default_factory=ModelOptions)
    ray: RayOptions = field(default_factory=RayOptions)
    constraints: ConstraintOptions = field(default_factory=ConstraintOptions)  # action bounds / rate limits

    @property
    def offline(self) -> bool:
        """No collection: `steps`, `eval_freq`, `checkpoint_freq` and `diag_freq` count updates."""
        return self.num_runners == 0

    @property
    def shards(self) -> int:
        """Replay shards the run writes: none offline, one in-process, else num_shards or one per runner."""
        return 0 if self.offline else 1 if self.backend == "local" else self.num_shards or self.num_runners

    def identity(self, tasks: list[str]) -> dict:
        """What must match for a run directory (its replay store and checkpoint) to be resumed."""
        return {
            "task": self.task,
            "tasks": list(tasks),
            "model_size": str(self.model_size),
            "seed": self.seed,
            "backend": self.backend,
            "num_shards": self.shards,
            "chunk_len": self.chunk_len,
            "max_episode_steps": self.max_episode_steps,
            "model": {k: v for k, v in dataclasses.asdict(self.model).items() if v is not None},
        }

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def compose(config_name: str = "train", overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """configs/<config_name>.yaml + command-line overrides -> a checked RunConfig.

    Raises ConfigError naming the key for a wrong type, an unknown key or an out-of-range value."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="run_schema", node=RunConfig)
    values = _hydra_compose(RunConfig, overrides, config_name, str(CONFIG_DIR))
    values.pop("preset", None)
    if "," in values["run_dir"] or "'" in values["run_dir"]:  # a task list in the default run_dir
        values["run_dir"] = re.sub(r"[,' ]+", "+", values["run_dir"])
    values["run_dir"] = run_location(values["run_dir"])
    return config_from_dict(values)


def _hydra_compose(
    schema: type, overrides: list[str] | tuple[str, ...], config_name: str, config_dir: str | None
) -> dict:
    """Hydra's compose of `config_name` (in `config_dir`, or the ConfigStore) with `overrides`, as a
    resolved plain dict; a Hydra/OmegaConf error becomes a one-line ConfigError naming the key."""
    from hydra import compose as hydra_compose
    from hydra import initialize, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, SCMode
    from omegaconf.errors import OmegaConfBaseException

    try:
        GlobalHydra.instance().clear()
        context = (
            initialize_config_dir(config_dir=config_dir, version_base="1.3")
            if config_dir
            else initialize(version_base="1.3", config_path=None)
        )
        with context:
            node = hydra_compose(config_name=config_name, overrides=list(overrides))
        values = OmegaConf.to_container(node, resolve=True, structured_config_mode=SCMode.DICT)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_one_line_hydra_error(exc, schema)) from None
    if not isinstance(values, dict):
        raise ConfigError(f"config {config_name!r} composed to a {type(values).__name__}, not a mapping of keys")
    values.pop("hydra", None)
    return values


def config_from_dict(values: dict) -> RunConfig:
    """A checked RunConfig from a plain mapping (a composed config, or a sweep trial's record)."""
    cfg = _to_object(RunConfig, values)
    check_config(cfg)
    return cfg


def _to_object(schema: type[_Schema], values: dict) -> _Schema:
    """`values` merged onto the structured config `schema`, as an instance of `schema`; an
    OmegaConf error becomes a one-line ConfigError naming the key."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))
    except OmegaConfBaseException as exc:
        raise ConfigError(_one_line_hydra_error(exc, schema)) from None
    if not isinstance(obj, schema):  # a structured config always becomes an instance of its class
        raise ConfigError(f"config for {schema.__name__} became a {type(obj).__name__}")
    return obj


def _one_line_hydra_error(exc: Exception, schema: type) -> str:
    """Hydra/OmegaConf's multi-line error as one line that names the key (and the closest key)."""
    text = str(exc)
    if exc.__cause__ is not None:
        text += "\n" + str(exc.__cause__)
    unknown = re.search(r"Key '([\w.]+)' is not in struct|Could not override '([\w.]+)'", text)
    if unknown:
        bad = unknown.group(1) or unknown.group(2)
        leaf, parent = bad.split(".")[-1], bad.rsplit(".", 1)[0] if "." in bad else None
        node = schema if parent is None else typing.get_type_hints(schema).get(parent)
        names = [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []
        append = re.search(r"To append to your config use (\S+)", text)
        if leaf in names and append:  # a known key the composed config has no node for (a mapping left empty)
            return (
                f"config key {bad!r} cannot be overridden here (the config has no entry for it yet): add it "
                f"with a leading '+', {append.group(1)} (or one entry: +{bad}.<name>=<value>)"
            )
        hint = difflib.get_close_matches(leaf, names, n=2)
        return f"unknown config key {bad!r}{f' (closest: {hint})' if hint else ''}"
    keep = [
        ln.strip()
        for ln in text.splitlines()
        if ln.strip() and not ln.strip().startswith(("object_type", "reference_type", "To append", "full_key"))
    ]
    key = re.search(r"full_key: ([\w.]+)", text)
    return f"bad value for {key.group(1) if key else 'a config key'}: " + "; ".join(dict.fromkeys(keep))


def compose_options(schema: type[_Schema], overrides: list[str] | tuple[str, ...] = ()) -> _Schema:
    """An entry point's own options: the dataclass `schema` (registered in the ConfigStore) with
    Hydra command-line overrides applied, type-checked; returns an instance of `schema`.
    Raises ConfigError naming the key."""
    from hydra.core.config_store import ConfigStore

    name = f"{schema.__name__}_schema"
    ConfigStore.instance().store(name=name, node=schema)
    try:
        return _to_object(schema, _hydra_compose(schema, overrides, name, None))
    except (ValueError, LookupError) as exc:  # the schema's own checks (__post_init__; LookupError: unknown names)
        raise ConfigError(str(exc)) from None


def check_config(cfg: RunConfig) -> None:
    """Ranges and choices, all at once (every problem named), before anything starts."""
    errors = []

    def need(ok: bool, msg: str) -> None:
        if not ok:
            errors.append(msg)

    need(cfg.backend in BACKENDS, f"backend must be one of {BACKENDS}, got {cfg.backend!r}")
    need(cfg.balance in BALANCES, f"balance must be one of {BALANCES}, got {cfg.balance!r}")
    need(cfg.steps > 0, f"steps must be > 0, got {cfg.steps}")
    need(cfg.seed >= 0, f"seed must be >= 0, got {cfg.seed}")
    for name in (
        "eval_freq",
        "checkpoint_freq",
        "envs_per_task",
        "collect_steps",
        "num_learners",
        "batch_size",
        "eval_episodes",
        "updates_per_round",
        "publish_every",
        "chunk_len",
        "torch_threads",
    ):
        need(getattr(cfg, name) >= 1, f"{name} must be >= 1, got {getattr(cfg, name)}")
    for name in ("num_runners", "diag_freq", "max_lag", "diag_samples_per_task", "seed_episodes"):
        need(getattr(cfg, name) >= 0, f"{name} must be >= 0, got {getattr(cfg, name)}")
    need(cfg.utd > 0, f"utd must be > 0, got {cfg.utd}")
    need(
        cfg.num_learners < 1 or cfg.batch_size % cfg.num_learners == 0,
        f"batch_size ({cfg.batch_size}) is the global batch and must split evenly over num_learners "
        f"({cfg.num_learners})",
    )
    need(0.0 <= cfg.offline_ratio <= 1.0, f"offline_ratio must be in [0, 1], got {cfg.offline_ratio}")
    need(cfg.seed_steps is None or cfg.seed_steps >= 0, f"seed_steps must be >= 0, got {cfg.seed_steps}")
    need(cfg.num_shards is None or cfg.num_shards >= 1, f"num_shards must be >= 1, got {cfg.num_shards}")
    need(cfg.precision in ("fp32", "bf16"), f"precision must be fp32 or bf16, got {cfg.precision!r}")
    need(
        cfg.compile_update in COMPILE_MODES,
        f"compile_update must be one of {COMPILE_MODES}, got {cfg.compile_update!r}",
    )
    need(
        cfg.wandb_mode in ("offline", "online", "disabled"),
        f"wandb_mode must be offline|online|disabled, got {cfg.wandb_mode!r}",
    )
    need(
        cfg.max_episode_steps is None or cfg.max_episode_steps > 2 * cfg.planner.horizon,
        f"max_episode_steps ({cfg.max_episode_steps}) must be > 2 x planner.horizon ({2 * cfg.planner.horizon}): "
        f"training windows and diagnostics need H+1 and 2H+1 steps",
    )
    need(
        cfg.eval_max_steps is None or cfg.eval_max_steps >= 1, f"eval_max_steps must be >= 1, got {cfg.eval_max_steps}"
    )
    if cfg.backend == "local":
        need(
            cfg.num_runners in (0, 1),
            f"backend=local runs 0 (offline) or 1 in-process runner, got num_runners="
            f"{cfg.num_runners}; use backend=ray for more",
        )
        need(
            cfg.num_learners == 1,
            f"backend=local has one learner, got num_learners={cfg.num_learners}; "
            f"use backend=ray for a data-parallel group",
        )
    if cfg.offline:
        need(cfg.offline_data is not None, "num_runners=0 means an offline run: give offline_data=<replay store>")
    errors += filter(None, (device_problem(dev) for dev in {cfg.device, cfg.runner_device or cfg.device}))
    try:
        PlannerConfig(**dataclasses.asdict(cfg.planner))
    except ValueError as exc:
        errors.append(f"planner: {exc}")
    try:
        model_preset(cfg.model_size)
    except ValueError as exc:
        errors.append(str(exc))
    if errors:
        raise ConfigError("; ".join(errors))


def device_problem(device: str) -> str | None:
    """Why `device` cannot be used on this machine (None if it can)."""
    if device == "cpu":
        return None
    if not re.fullmatch(r"cuda(:\d+)?", device):
        return f"device must be cpu, cuda or cuda:<n>, got {device!r}"
    import torch

    if not torch.cuda.is_available():
        return f"device={device} but this machine has no usable CUDA GPU (torch {torch.__version__}); use device=cpu"
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        return f"device={device} but this machine has {torch.cuda.device_count()} GPUs"
    return None


# -- values derived from the config and the task set (one place each) ---------------------------
def default_seed_steps(episode_lengths: list[int]) -> int:
    """TD-MPC2's rule: max(1000, 5 episodes of the longest task)."""
    return max(1000, 5 * max(episode_lengths))


def seed_steps(cfg: RunConfig, task_set, tasks: list[str]) -> int:
    if cfg.seed_steps is not None:
        return cfg.seed_steps
    return default_seed_steps([min(task_set.spec(t).episode_length, cfg.max_episode_steps or 10**9) for t in tasks])


def build_agent_config(cfg: RunConfig, task_set, device: str | None = None) -> AgentConfig:
    """The agent's config for `task_set` (dims, discounts, descriptors, text embeddings) from the run config."""
    from embodiments.conditioning import conditioning_kwargs
    from embodiments.constraints import run_constraints

    model = {k: v for k, v in dataclasses.asdict(cfg.model).items() if v is not None}
    return make_agent_config(
        **conditioning_kwargs(model, task_set, device or cfg.device),
        obs_dim=task_set.max_obs_dim,
        action_dim=task_set.max_action_dim,
        episode_lengths=[t.episode_length for t in task_set.tasks],
        model_size=cfg.model_size,
        model=model,
        optim=dataclasses.asdict(cfg.optim),
        planner=dataclasses.asdict(cfg.planner),
        device=device or cfg.device,
        precision=cfg.precision,
        can_terminate=task_set.can_terminate(),
        compile_update=cfg.compile_update,
        constraints=run_constraints(task_set, cfg.constraints),
    )


# -- the run directory ---------------------------------------------------------------------------
RUN_FILE = "run.json"


RAY_PACKAGE_MARK = "/runtime_resources/working_dir_files/_ray_pkg_"  # `ray job submit --working-dir` unpacks here
JOB_RUNS_BASE = "~/latentfleet-runs"


def run_location(location: str, cwd: str | None = None) -> str:
    """Where a run (or sweep) directory goes. A relative path is relative to the working directory,
    except in a job of `ray job submit --working-dir`, whose working directory is Ray's temporary
    package folder (deleted with the cluster): there it goes under ~/latentfleet-runs/ (a leading
    `runs/` dropped), which outlives the job. URIs and absolute paths are kept as given."""
    from distributed.storage import is_remote

    cwd = os.getcwd() if cwd is None else cwd
    if is_remote(location) or os.path.isabs(os.path.expanduser(location)) or RAY_PACKAGE_MARK not in cwd:
        return location
    rel = Path(location)
    if rel.parts and rel.parts[0] == "runs":
        rel = Path(*rel.parts[1:])
    return str(Path(os.path.expanduser(JOB_RUNS_BASE)) / rel)


def check_storage(cfg: RunConfig) -> None:
    """A run_dir URI must name a bucket that exists and can be written (probed with one small object,
    deleted again); a scheme fsspec does not know is refused too."""
    from distributed.storage import StorageError, check_writable

    try:
        check_writable(cfg.run_dir, "run_dir")
    except StorageError as exc:
        raise ConfigError(str(exc)) from None


def check_run_dir(cfg: RunConfig, tasks: list[str], text_encoder: str | None = None) -> None:
    """Refuse a run directory that belongs to another run, or storage that cannot be written, or whose task
    texts were embedded by another text encoder than `text_encoder` (language models), before anything is
    written there."""
    from distributed.storage import storage_path

    check_storage(cfg)
    run_dir = storage_path(cfg.run_dir)
    meta = run_dir / RUN_FILE
    if not meta.exists():
        if (run_dir / "checkpoint.pt").exists():
            raise ConfigError(
                f"run directory {cfg.run_dir} holds a checkpoint but no {RUN_FILE}: it was not made "
                f"by this version; choose another run_dir"
            )
        return
    try:
        saved = json.loads(meta.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{meta} is unreadable ({exc}); choose another run_dir") from None
    mine = cfg.identity(tasks)
    if "task" not in saved:
        raise ConfigError(f"{meta} names no task: not a run directory of this project; choose another run_dir")
    # a key the directory does not record constrains nothing (e.g. an imported model has no replay store)
    diffs = {k: (saved[k], v) for k, v in mine.items() if k in saved and saved[k] != v}
    if diffs:
        shown = {
            k: (f"{len(a or [])} tasks", f"{len(b)} tasks") if k == "tasks" else (a, b) for k, (a, b) in diffs.items()
        }
        raise ConfigError(
            f"run directory {cfg.run_dir} belongs to another run ("
            + ", ".join(f"{k}: {a!r} there, {b!r} here" for k, (a, b) in shown.items())
            + "); use another run_dir or the original settings"
        )
    if text_encoder and saved.get("text_encoder") and saved["text_encoder"] != text_encoder:
        raise ConfigError(
            f"run directory {cfg.run_dir} embedded its task texts with {saved['text_encoder']}; this "
            f"installation has {text_encoder}: install the versions the run used, or use another run_dir"
        )


def write_run_file(cfg: RunConfig, tasks: list[str], extra: dict | None = None) -> None:
    """run.json (identity + what a reader of the run needs), written atomically."""
    from distributed.storage import storage_path, write_bytes

    run_dir = storage_path(cfg.run_dir)
    meta = run_dir / RUN_FILE
    if meta.exists():
        return
    write_bytes(meta, json.dumps({**cfg.identity(tasks), **(extra or {})}, indent=1).encode())
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
