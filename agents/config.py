"""Typed, frozen configuration of the agent: model, optimisation and planner.

Built once (from Hydra in launch/, or directly in tests) and never mutated. Values that
depend on the task set (obs/action dims, task count, discounts) come in through
`make_agent_config`; derived values are computed by named functions below.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

TASK_CONDITIONINGS = ("table", "descriptor", "both")
COMPILE_MODES = ("off", "default", "reduce-overhead")

# Published TD-MPC2 model sizes (millions of parameters at the mt80 dims). `num_q` defaults to 5.
MODEL_PRESETS: dict[str, dict[str, int]] = {
    "1": dict(enc_dim=256, mlp_dim=384, latent_dim=128, num_enc_layers=2, num_q=2),
    "5": dict(enc_dim=256, mlp_dim=512, latent_dim=512, num_enc_layers=2, num_q=5),
    "19": dict(enc_dim=1024, mlp_dim=1024, latent_dim=768, num_enc_layers=3, num_q=5),
    "48": dict(enc_dim=1792, mlp_dim=1792, latent_dim=768, num_enc_layers=4, num_q=5),
    "317": dict(enc_dim=4096, mlp_dim=4096, latent_dim=1376, num_enc_layers=5, num_q=8),
    # Not from the paper: a ~0.1M model for tests and the CI learning check on 2 CPU cores.
    "tiny": dict(enc_dim=128, mlp_dim=128, latent_dim=64, num_enc_layers=2, num_q=2),
}


def model_preset(model_size: str | int) -> dict[str, int]:
    """The architecture dims of a named model size; unknown sizes raise with the valid names."""
    key = str(model_size)
    if key not in MODEL_PRESETS:
        close = difflib.get_close_matches(key, MODEL_PRESETS, n=3, cutoff=0.0)
        raise ValueError(
            f"unknown model_size {model_size!r}; valid sizes are {sorted(MODEL_PRESETS)} "
            f"(closest: {close})"
        )
    return dict(MODEL_PRESETS[key])


@dataclass(frozen=True)
class ModelConfig:
    obs_dim: int
    action_dim: int
    num_tasks: int = 1
    model_size: str = "5"
    enc_dim: int = 256
    mlp_dim: int = 512
    latent_dim: int = 512
    num_enc_layers: int = 2
    num_q: int = 5
    task_dim: int = 96  # used only when num_tasks > 1 (single-task models carry no embedding)
    simnorm_dim: int = 8
    num_bins: int = 101
    vmin: float = -10.0
    vmax: float = 10.0
    dropout: float = 0.01
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    # How a task id becomes its embedding (multitask models only):
    #   table      - a learned lookup table, one row per task (TD-MPC2); new tasks need finetuning
    #   descriptor - a learned map from the task's descriptor (body morphology + objective) alone
    #   both       - the map plus a per-task table offset (initialised to 0, L2-regularised)
    # The last two reach bodies never trained on (zero-shot transfer).
    task_conditioning: str = "table"
    descriptor_hidden: int = 256
    task_descriptors: tuple[tuple[float, ...], ...] | None = None  # [num_tasks, descriptor_dim], raw
    descriptor_mean: tuple[float, ...] | None = None  # standardisation fixed at creation (training tasks)
    descriptor_std: tuple[float, ...] | None = None
    # Episodic tasks: `can_terminate` [num_tasks] says which tasks' episodes can end early (None: none).
    # A termination head exists iff `termination_head` and some task can terminate.
    can_terminate: tuple[bool, ...] | None = None
    termination_head: bool = True

    def __post_init__(self):
        if self.task_conditioning not in TASK_CONDITIONINGS:
            raise ValueError(f"task_conditioning must be one of {TASK_CONDITIONINGS}, got {self.task_conditioning!r}")
        for name in ("task_descriptors", "descriptor_mean", "descriptor_std"):  # lists from a checkpoint
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, tuple(tuple(float(x) for x in r) if isinstance(r, (list, tuple))
                                                     else float(r) for r in v))
        if self.can_terminate is not None:
            object.__setattr__(self, "can_terminate", tuple(bool(x) for x in self.can_terminate))
            if len(self.can_terminate) != self.num_tasks:
                raise ValueError(f"can_terminate has {len(self.can_terminate)} flags for {self.num_tasks} tasks; "
                                 f"give one per task (envs TaskSet.can_terminate())")
        if self.uses_descriptors:
            if self.task_descriptors is None or self.descriptor_mean is None or self.descriptor_std is None:
                raise ValueError(f"task_conditioning={self.task_conditioning!r} needs task descriptors; build the "
                                 f"config with make_agent_config(..., task_descriptors=...) (see "
                                 f"embodiments.conditioning.conditioning_descriptors)")
            if len(self.task_descriptors) != self.num_tasks:
                raise ValueError(f"{len(self.task_descriptors)} task descriptors for {self.num_tasks} tasks")
            if {len(r) for r in self.task_descriptors} != {len(self.descriptor_mean)} \
                    or len(self.descriptor_std) != len(self.descriptor_mean):
                raise ValueError("task descriptors and their mean/std must all have the same length")

    @property
    def has_termination_head(self) -> bool:
        return bool(self.termination_head and self.can_terminate and any(self.can_terminate))

    @property
    def uses_descriptors(self) -> bool:
        return self.multitask and self.task_conditioning in ("descriptor", "both")

    @property
    def uses_table(self) -> bool:
        return self.multitask and self.task_conditioning in ("table", "both")

    @property
    def descriptor_dim(self) -> int:
        return len(self.descriptor_mean) if self.descriptor_mean is not None else 0

    @property
    def multitask(self) -> bool:
        return self.num_tasks > 1

    @property
    def task_embedding_dim(self) -> int:
        return self.task_dim if self.multitask else 0

    @property
    def bin_size(self) -> float:
        return (self.vmax - self.vmin) / (self.num_bins - 1)


@dataclass(frozen=True)
class OptimConfig:
    batch_size: int = 256
    horizon: int = 3
    lr: float = 3e-4
    enc_lr_scale: float = 0.3
    grad_clip_norm: float = 20.0
    tau: float = 0.01
    rho: float = 0.5
    consistency_coef: float = 20.0
    reward_coef: float = 0.1
    value_coef: float = 0.1
    entropy_coef: float = 1e-4
    scale_tau: float = 0.01  # EMA rate of the running Q scale (P95 - P5)
    task_offset_coef: float = 0.1  # L2 on the per-task table offsets (task_conditioning=both)
    termination_coef: float = 1.0  # BCE of the termination head (terminating tasks only)


@dataclass(frozen=True)
class PlannerConfig:
    horizon: int = 3
    iterations: int = 6
    num_samples: int = 512
    num_elites: int = 64
    num_pi_trajs: int = 24
    min_std: float = 0.05
    max_std: float = 2.0
    temperature: float = 0.5
    large_action_dim: int = 20  # TD-MPC2's heuristic: +2 iterations at or above this action dim
    large_action_extra_iterations: int = 2
    deadline_ms: float | None = None  # stop refining once this budget is spent (None: never)
    rows_per_pass: int | None = None  # rows planned together in one pass (None: 2 on CPU, all on GPU)
    # torch.compile the MPPI iteration: "off", "default" (inductor) or "reduce-overhead" (CUDA graphs on
    # a GPU; plain compile on CPU). Compiling costs ~1-2 min per process and shape on a 2-core CPU.
    compile: str = "off"

    def __post_init__(self):
        if self.num_pi_trajs >= self.num_samples:
            raise ValueError(f"num_pi_trajs ({self.num_pi_trajs}) must be < num_samples ({self.num_samples})")
        if not 0 < self.num_elites <= self.num_samples:
            raise ValueError(f"num_elites ({self.num_elites}) must be in [1, num_samples={self.num_samples}]")
        if self.horizon < 1 or self.iterations < 1:
            raise ValueError("planner horizon and iterations must be >= 1")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"planner compile must be one of {COMPILE_MODES}, got {self.compile!r}")


def planner_iterations(cfg: PlannerConfig, action_dim: int) -> int:
    """MPPI iterations for an action space: more for large ones (TD-MPC2's heuristic)."""
    extra = cfg.large_action_extra_iterations if action_dim >= cfg.large_action_dim else 0
    return cfg.iterations + extra


@dataclass(frozen=True)
class AgentConfig:
    model: ModelConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    discounts: tuple[float, ...] = (0.99,)  # one per task
    device: str = "cpu"
    precision: str = "fp32"  # "fp32" or "bf16" (autocast for planning and updates; bf16 needs native support)
    compile_update: str = "off"  # torch.compile the world-model loss: "off", "default", "reduce-overhead" (GPU)

    def __post_init__(self):
        if len(self.discounts) != self.model.num_tasks:
            raise ValueError(
                f"{len(self.discounts)} discounts for {self.model.num_tasks} tasks; give one per task"
            )
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.compile_update not in COMPILE_MODES:
            raise ValueError(f"compile_update must be one of {COMPILE_MODES}, got {self.compile_update!r}")

    @property
    def can_terminate(self) -> tuple[bool, ...]:
        """One flag per task (beside `discounts`): episodes of that task can end early."""
        return self.model.can_terminate or (False,) * self.model.num_tasks


def discount_from_episode_length(episode_length: int, denom: float = 5.0,
                                 lo: float = 0.95, hi: float = 0.995) -> float:
    """TD-MPC2's per-task discount, growing with episode length: (f - 1) / f with f = length / 5,
    clipped to [lo, hi] (0.99 for 500-step dm_control episodes, 0.95 for 100-step Meta-World)."""
    if episode_length <= 0:
        raise ValueError(f"episode_length must be positive, got {episode_length}")
    frac = episode_length / denom
    return float(min(max((frac - 1) / frac, lo), hi))


def descriptor_stats(rows) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature mean and std of descriptor rows; a feature constant over the rows gets std 1,
    so a new body that differs there moves the input by its raw difference, not by infinity."""
    import numpy as np

    a = np.asarray(rows, dtype=np.float64)
    std = a.std(0)
    std[std < 1e-6] = 1.0
    return tuple(a.mean(0).tolist()), tuple(std.tolist())


def checked_options(cls, values: Mapping[str, Any] | None, what: str | None = None) -> dict[str, Any]:
    """`values` as a dict if every key is a field of dataclass `cls`; otherwise a ValueError that
    names the unknown keys and their closest fields."""
    values = dict(values or {})
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        hints = {u: difflib.get_close_matches(u, known, n=1) for u in unknown}
        raise ValueError(f"unknown {what or cls.__name__} keys {unknown} (closest: {hints})")
    return values


def make_agent_config(
    *,
    obs_dim: int,
    action_dim: int,
    episode_lengths: tuple[int, ...] | list[int],
    model_size: str | int = "5",
    model: Mapping[str, Any] | None = None,
    optim: Mapping[str, Any] | None = None,
    planner: Mapping[str, Any] | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    task_descriptors=None,
    can_terminate: tuple[bool, ...] | list[bool] | None = None,
    compile_update: str = "off",
) -> AgentConfig:
    """Assemble an AgentConfig from a preset name plus overrides (e.g. from Hydra).

    `task_descriptors` ([num_tasks, D], one row per task) are needed for
    `model.task_conditioning` 'descriptor' or 'both'; they are standardised with their own
    per-feature mean/std, which stay fixed for tasks added later. `can_terminate` (one flag per
    task, e.g. `TaskSet.can_terminate()`; None: no task terminates) gives the model a termination
    head unless `model.termination_head` is false."""
    dims = model_preset(model_size)
    dims.update(checked_options(ModelConfig, model))
    if task_descriptors is not None and dims.get("task_conditioning", "table") != "table":
        rows = [[float(x) for x in r] for r in task_descriptors]
        mean, std = descriptor_stats(rows)
        dims.update(task_descriptors=tuple(map(tuple, rows)), descriptor_mean=mean, descriptor_std=std)
    if can_terminate is not None:
        dims["can_terminate"] = tuple(bool(x) for x in can_terminate)
    mc = ModelConfig(obs_dim=int(obs_dim), action_dim=int(action_dim), num_tasks=len(episode_lengths),
                     model_size=str(model_size), **{k: v for k, v in dims.items()
                                                    if k not in ("obs_dim", "action_dim", "num_tasks", "model_size")})
    return AgentConfig(
        model=mc,
        optim=OptimConfig(**checked_options(OptimConfig, optim)),
        planner=PlannerConfig(**checked_options(PlannerConfig, planner)),
        discounts=tuple(discount_from_episode_length(int(L)) for L in episode_lengths),
        device=device,
        precision=precision,
        compile_update=compile_update,
    )


__all__ = [
    "MODEL_PRESETS", "TASK_CONDITIONINGS", "ModelConfig", "descriptor_stats", "OptimConfig", "PlannerConfig", "AgentConfig",
    "model_preset", "planner_iterations", "discount_from_episode_length", "make_agent_config", "checked_options",
    "replace",
]
