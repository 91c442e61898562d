"""Typed, frozen configuration of the agent: model, optimisation and planner.

Built once (from Hydra in launch/, or directly in tests) and never mutated. Values that
depend on the task set (obs/action dims, task count, discounts) come in through
`make_agent_config`; derived values are computed by named functions below.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# How a task id becomes its embedding: a learned table, a learned map from the task's features (its
# descriptor and/or the embedding of its text), or a map plus a table offset. "both" is descriptor+table.
TASK_CONDITIONINGS = (
    "table",
    "descriptor",
    "both",
    "language",
    "descriptor+language",
    "language+table",
    "descriptor+language+table",
)


def conditioning_parts(mode: str) -> frozenset[str]:
    """The sources of a task_conditioning value: a subset of {"table", "descriptor", "language"}."""
    if mode not in TASK_CONDITIONINGS:
        close = difflib.get_close_matches(str(mode), TASK_CONDITIONINGS, n=2, cutoff=0.0)
        raise ValueError(
            f"model.task_conditioning must be one of {TASK_CONDITIONINGS}, got {mode!r} (closest: {close})"
        )
    return frozenset(("descriptor", "table") if mode == "both" else mode.split("+"))


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
            f"unknown model_size {model_size!r}; valid sizes are {sorted(MODEL_PRESETS)} (closest: {close})"
        )
    return dict(MODEL_PRESETS[key])


@dataclass(frozen=True)
class ModelConfig:
    obs_dim: int
    action_dim: int
    num_tasks: int = 1
    model_size: str = "5"
    enc_dim: int = 256  # encoder hidden width (run options: None keeps the model size preset's)
    mlp_dim: int = 512  # hidden width of the dynamics, reward, termination, policy and Q networks
    latent_dim: int = 512  # width of the latent state
    num_enc_layers: int = 2  # encoder layers
    num_q: int = 5  # Q heads in the ensemble (two are drawn for each target)
    task_dim: int = 96  # used only when num_tasks > 1 (single-task models carry no embedding)
    simnorm_dim: int = 8  # group size of the latent's simplicial normalisation
    num_bins: int = 101  # bins of the two-hot reward and value regression
    vmin: float = -10.0  # lowest bin of the two-hot regression (symlog space)
    vmax: float = 10.0  # highest bin of the two-hot regression (symlog space)
    dropout: float = 0.01  # dropout in the Q heads' first layer
    log_std_min: float = -10.0  # lower bound of the policy's log std
    log_std_max: float = 2.0  # upper bound of the policy's log std
    # How a task id becomes its embedding (multitask models only):
    #   table      - a learned lookup table, one row per task (TD-MPC2); new tasks need finetuning
    #   descriptor - a learned map from the task's descriptor (body morphology + objective) alone
    #   language   - the same map from the embedding of the task's text (envs/describe.py)
    #   descriptor+language - the map from both, concatenated
    #   both (descriptor+table), language+table, descriptor+language+table - the map plus a per-task
    #                table offset (initialised to 0, L2-regularised)
    # All but `table` reach bodies never trained on (zero-shot transfer).
    task_conditioning: str = "table"
    descriptor_hidden: int = 256  # hidden width of the map from descriptor or text to task embedding
    task_descriptors: tuple[tuple[float, ...], ...] | None = None  # [num_tasks, descriptor_dim], raw
    descriptor_mean: tuple[float, ...] | None = None  # standardisation fixed at creation (training tasks)
    descriptor_std: tuple[float, ...] | None = None
    # [num_tasks, language_dim] unit-norm text embeddings, kept in the config (and so in every checkpoint):
    # a saved model plans without its text encoder; `language_encoder` names the encoder and version
    task_language: tuple[tuple[float, ...], ...] | None = None
    language_encoder: str | None = None
    # Episodic tasks: `can_terminate` [num_tasks] says which tasks' episodes can end early (None: none).
    # A termination head exists iff `termination_head` and some task can terminate.
    can_terminate: tuple[bool, ...] | None = None
    termination_head: bool = True  # learn a termination head where some task can terminate (false: never)

    def __post_init__(self):
        conditioning_parts(self.task_conditioning)  # refuses an unknown value
        for name in (
            "task_descriptors",
            "descriptor_mean",
            "descriptor_std",
            "task_language",
        ):  # lists from a checkpoint
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(
                    self,
                    name,
                    tuple(tuple(float(x) for x in r) if isinstance(r, (list, tuple)) else float(r) for r in v),
                )
        if self.can_terminate is not None:
            object.__setattr__(self, "can_terminate", tuple(bool(x) for x in self.can_terminate))
            if len(self.can_terminate) != self.num_tasks:
                raise ValueError(
                    f"can_terminate has {len(self.can_terminate)} flags for {self.num_tasks} tasks; "
                    f"give one per task (envs TaskSet.can_terminate())"
                )
        if self.uses_descriptors:
            if self.task_descriptors is None or self.descriptor_mean is None or self.descriptor_std is None:
                raise ValueError(
                    f"task_conditioning={self.task_conditioning!r} needs task descriptors; build the "
                    f"config with make_agent_config(..., task_descriptors=...) (see "
                    f"embodiments.conditioning.conditioning_descriptors)"
                )
            if len(self.task_descriptors) != self.num_tasks:
                raise ValueError(f"{len(self.task_descriptors)} task descriptors for {self.num_tasks} tasks")
            if {len(r) for r in self.task_descriptors} != {len(self.descriptor_mean)} or len(
                self.descriptor_std
            ) != len(self.descriptor_mean):
                raise ValueError("task descriptors and their mean/std must all have the same length")
        if self.uses_language:
            if self.task_language is None or self.language_encoder is None:
                raise ValueError(
                    f"task_conditioning={self.task_conditioning!r} needs the tasks' text embeddings; "
                    f"build the config with make_agent_config(..., task_language=..., language_encoder=...) "
                    f"(see embodiments.conditioning.conditioning_kwargs)"
                )
            if len(self.task_language) != self.num_tasks or len({len(r) for r in self.task_language}) != 1:
                raise ValueError(
                    f"task_language must hold one embedding per task ({self.num_tasks}), all of one "
                    f"length; got {len(self.task_language)} rows"
                )

    @property
    def has_termination_head(self) -> bool:
        return bool(self.termination_head and self.can_terminate and any(self.can_terminate))

    @property
    def uses_descriptors(self) -> bool:
        return self.multitask and "descriptor" in conditioning_parts(self.task_conditioning)

    @property
    def uses_language(self) -> bool:
        return self.multitask and "language" in conditioning_parts(self.task_conditioning)

    @property
    def uses_table(self) -> bool:
        return self.multitask and "table" in conditioning_parts(self.task_conditioning)

    @property
    def uses_map(self) -> bool:
        """A learned map from task features (descriptor and/or text embedding) makes the embedding."""
        return self.uses_descriptors or self.uses_language

    @property
    def descriptor_dim(self) -> int:
        return len(self.descriptor_mean) if self.descriptor_mean is not None else 0

    @property
    def language_dim(self) -> int:
        return len(self.task_language[0]) if self.task_language else 0

    @property
    def feature_dim(self) -> int:
        """Input width of the feature map: the descriptor's features (if used), then the text embedding's."""
        return self.descriptor_dim * self.uses_descriptors + self.language_dim * self.uses_language

    @property
    def multitask(self) -> bool:
        return self.num_tasks > 1

    @property
    def task_embedding_dim(self) -> int:
        return self.task_dim if self.multitask else 0

    @property
    def bin_size(self) -> float:
        return (self.vmax - self.vmin) / (self.num_bins - 1)


PI_SCALES = ("task", "global")
PI_SCALE_INITS = ("one", "first_batch")
PI_ENTROPIES = ("tdmpc2", "squashed")
PI_TASK_GRADS = ("keep", "drop")


@dataclass(frozen=True)
class OptimConfig:
    """The update's hyperparameters. The batch size belongs to whoever samples (distributed RunConfig.batch_size,
    the learner's), the training horizon is the planner's (PlannerConfig.horizon): one home each."""

    lr: float = 3e-4  # Adam's learning rate
    enc_lr_scale: float = 0.3  # the encoder learns at lr times this
    grad_clip_norm: float = 20.0  # the world-model gradient's norm is clipped to this
    tau: float = 0.01  # update rate of the target Q heads and of the running Q scale
    rho: float = 0.5  # losses at rollout step t are weighted rho**t
    consistency_coef: float = 20.0  # weight of the latent consistency loss
    reward_coef: float = 0.1  # weight of the reward loss
    value_coef: float = 0.1  # weight of the Q loss
    entropy_coef: float = 1e-4  # weight of the policy's entropy bonus
    scale_tau: float = 0.01  # EMA rate of the running Q scale (P95 - P5)
    task_offset_coef: float = 0.1  # L2 on the per-task table offsets (a map plus a table: both, language+table, ...)
    termination_coef: float = 1.0  # BCE of the termination head (terminating tasks only)
    # weight of a terminated step in that BCE (1: plain BCE, TD-MPC2's). Terminations are a few % of
    # the steps, so a plain BCE can fit the base rate and never predict p > 0.5, where the planner stops
    termination_pos_weight: float = 1.0
    # train the head on detached latents: it reads the latent, its loss does not shape the encoder or the
    # dynamics. false: TD-MPC2's, the BCE's gradient reaches them like the reward's; on InvertedPendulum-v5
    # that slowed learning on every seed (bench/results/termination_gym-invertedpendulum.md, session 12)
    termination_detach: bool = True
    # Departures from TD-MPC2's update are options whose defaults are TD-MPC2's unless a measured result
    # chose otherwise (README, "Parity with TD-MPC2"; bench/fidelity.py checks the defaults against its code).
    # the policy loss divides Q by a running scale: one for all tasks ("global", TD-MPC2's) or one per task
    # ("task"); identical with one task. See agents/running_scale.py.
    pi_scale: str = "global"
    # where the running Q scale starts: "one", TD-MPC2's (1, then every batch moves it by scale_tau), or
    # "first_batch" (a task's first batch sets it; from trained weights that is ~10x TD-MPC2's first scale)
    pi_scale_init: str = "one"
    # the policy's entropy bonus: "tdmpc2" (minus the active action dims times the Gaussian log-prob before the
    # tanh correction, as TD-MPC2's `scaled_entropy`) or "squashed" (minus the active dims times the log-prob
    # after the tanh correction)
    pi_entropy: str = "tdmpc2"
    # the policy loss's gradient on the task conditioning (embedding table, descriptor or text map): "keep"
    # (TD-MPC2: it stays in .grad and is applied with the next world-model step) or "drop"
    pi_task_grad: str = "keep"

    def __post_init__(self):
        for key, allowed in (
            ("pi_scale", PI_SCALES),
            ("pi_scale_init", PI_SCALE_INITS),
            ("pi_entropy", PI_ENTROPIES),
            ("pi_task_grad", PI_TASK_GRADS),
        ):
            if getattr(self, key) not in allowed:
                raise ValueError(f"optim.{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if not self.termination_pos_weight > 0:
            raise ValueError(f"optim.termination_pos_weight must be > 0, got {self.termination_pos_weight!r}")


TERMINATION_MODES = ("hard", "soft", "off")


@dataclass(frozen=True)
class PlannerConfig:
    horizon: int = 3  # model steps of every planned sequence (and of the training rollout)
    iterations: int = 6  # MPPI iterations per planned action
    num_samples: int = 512  # action sequences sampled per iteration
    num_elites: int = 64  # best-scoring sequences that set the next mean and std
    num_pi_trajs: int = 24  # sequences of the samples proposed by the policy prior
    min_std: float = 0.05  # lower bound of the sampling std
    max_std: float = 2.0  # the sampling std of the first iteration (and its upper bound)
    temperature: float = 0.5  # the elites' weights are softmax(temperature * score)
    large_action_dim: int = 20  # TD-MPC2's heuristic: +2 iterations at or above this action dim
    large_action_extra_iterations: int = 2  # iterations added at or above large_action_dim
    deadline_ms: float | None = None  # stop refining once this budget is spent (None: never)
    rows_per_pass: int | None = (
        None  # rows planned together in one pass (None: all on GPU; planner.cpu_rows_per_pass on CPU)
    )
    # torch.compile the MPPI iteration: "off", "default" (inductor) or "reduce-overhead" (CUDA graphs on
    # a GPU; plain compile on CPU). Compiling costs ~1-2 min per process and shape on a 2-core CPU.
    compile: str = "off"
    # how the planner uses the model's termination head (where it has one; tasks that never terminate are
    # never affected): "soft" (default): each later reward and the terminal value count with the predicted
    # probability of still being alive, prod(1 - p), i.e. the expected return under the head; "hard"
    # (TD-MPC2's): rewards and the terminal value after a step predicted to terminate (p > 0.5) drop out;
    # "off": the head is still trained, the planner ignores it. Soft is the default because on Hopper the
    # 0.5 threshold threw away what the head knew (bench/results/termination_gym-hopper.md, session 15)
    termination: str = "soft"

    def __post_init__(self):
        if self.num_pi_trajs >= self.num_samples:
            raise ValueError(f"num_pi_trajs ({self.num_pi_trajs}) must be < num_samples ({self.num_samples})")
        if not 0 < self.num_elites <= self.num_samples:
            raise ValueError(f"num_elites ({self.num_elites}) must be in [1, num_samples={self.num_samples}]")
        if self.horizon < 1 or self.iterations < 1:
            raise ValueError("planner horizon and iterations must be >= 1")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"planner compile must be one of {COMPILE_MODES}, got {self.compile!r}")
        if self.termination not in TERMINATION_MODES:
            raise ValueError(f"planner termination must be one of {TERMINATION_MODES}, got {self.termination!r}")


def planner_iterations(cfg: PlannerConfig, action_dim: int) -> int:
    """MPPI iterations for an action space: more for large ones (TD-MPC2's heuristic)."""
    extra = cfg.large_action_extra_iterations if action_dim >= cfg.large_action_dim else 0
    return cfg.iterations + extra


VIOLATION_TOL = 1e-5  # float32 projection error allowed when counting constraint violations


@dataclass(frozen=True)
class ActionConstraints:
    """Limits on one task's actions, over its own action dims (no padding): bounds lo <= a <= hi
    inside [-1, 1] and a rate limit |a_t - a_{t-1}| <= max_delta, per dim. A field of one value
    applies to every dim; None leaves that limit off ([-1, 1]; no rate limit).

    `rest` is the reference of an episode's first action: with it, a_0 obeys |a_0 - rest| <=
    max_delta; None (the default) means the first action obeys the bounds only."""

    lo: tuple[float, ...] | None = None
    hi: tuple[float, ...] | None = None
    max_delta: tuple[float, ...] | None = None
    rest: tuple[float, ...] | None = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.lo, self.hi, self.max_delta))

    def resolved(self, owner: str, action_dim: int) -> ActionConstraints:
        """Every field at `action_dim` values (lo/hi default to -1/1, max_delta to inf), checked:
        -1 <= lo < hi <= 1, max_delta > 0, rest inside the bounds. Errors name `owner` and the field."""
        if isinstance(action_dim, bool) or not isinstance(action_dim, int) or action_dim < 1:
            raise ValueError(f"{owner}: action_dim must be a positive int, got {action_dim!r}")

        def full(name: str, default: float | None) -> tuple[float, ...] | None:
            v = getattr(self, name)
            if v is None:
                return None if default is None else (default,) * action_dim
            if isinstance(v, (int, float)):
                v = (v,)
            try:
                v = tuple(float(x) for x in v)
            except (TypeError, ValueError):
                raise ValueError(f"{owner}: constraints.{name} must be a list of numbers, got {v!r}") from None
            if len(v) == 1:
                v = v * action_dim
            if len(v) != action_dim:
                raise ValueError(
                    f"{owner}: constraints.{name} has {len(v)} values but the task's action_dim is "
                    f"{action_dim}; give {action_dim} values (or one for every dim)"
                )
            if any(x != x for x in v):
                raise ValueError(f"{owner}: constraints.{name} contains NaN: {list(v)}")
            return v

        def bounded(name: str, default: float) -> tuple[float, ...]:
            v = full(name, default)
            if v is None:  # unreachable: full() returns the default's tuple for an unset field
                raise AssertionError(f"{owner}: constraints.{name} resolved to None despite a default")
            return v

        lo, hi = bounded("lo", -1.0), bounded("hi", 1.0)
        delta, rest = bounded("max_delta", float("inf")), full("rest", None)
        bad = [i for i in range(action_dim) if not -1.0 <= lo[i] < hi[i] <= 1.0]
        if bad:
            raise ValueError(
                f"{owner}: constraints.lo/hi must satisfy -1 <= lo < hi <= 1 per dim; dims {bad} have "
                f"lo={[lo[i] for i in bad]}, hi={[hi[i] for i in bad]}"
            )
        bad = [i for i in range(action_dim) if not delta[i] > 0]
        if bad:
            raise ValueError(
                f"{owner}: constraints.max_delta must be > 0 per dim (leave it unset for no rate "
                f"limit); dims {bad} have {[delta[i] for i in bad]}"
            )
        if rest is not None:
            bad = [i for i in range(action_dim) if not lo[i] <= rest[i] <= hi[i]]
            if bad:
                raise ValueError(
                    f"{owner}: constraints.rest must lie inside [lo, hi]; dims {bad} have rest={[rest[i] for i in bad]}"
                )
        return ActionConstraints(lo=lo, hi=hi, max_delta=delta, rest=rest)

    def violations(self, actions, previous=None) -> int:
        """Steps of actions [T, action_dim] (one episode's consecutive actions, padding dropped)
        that break a bound or the rate limit (within VIOLATION_TOL). `previous` [action_dim] is the
        action before actions[0] (None: the episode's start, measured from `rest` if set)."""
        import numpy as np

        c = self.resolved("violations", int(np.shape(actions)[-1]))
        if c.lo is None or c.hi is None or c.max_delta is None:  # resolved() sets every bound
            raise AssertionError(f"resolved constraints left a bound unset: {c}")
        a = np.asarray(actions, np.float64).reshape(-1, len(c.lo))
        lo, hi, r = (np.asarray(x) for x in (c.lo, c.hi, c.max_delta))
        bad = ((a < lo - VIOLATION_TOL) | (a > hi + VIOLATION_TOL)).any(1)
        ref = previous if previous is not None else c.rest
        prev = np.concatenate([np.asarray(ref, np.float64).reshape(1, -1) if ref is not None else a[:1], a[:-1]])
        bad |= (np.abs(a - prev) > r + VIOLATION_TOL).any(1)
        return int(bad.sum())


def constraints_from_plain(rows) -> tuple[ActionConstraints | None, ...] | None:
    """Per-task constraints back from their plain form (lists/dicts, e.g. a saved config)."""
    if rows is None:
        return None
    return tuple(
        None if r is None else ActionConstraints(**{k: None if v is None else tuple(v) for k, v in dict(r).items()})
        for r in rows
    )


@dataclass(frozen=True)
class AgentConfig:
    model: ModelConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    discounts: tuple[float, ...] = (0.99,)  # one per task
    device: str = "cpu"
    precision: str = "fp32"  # "fp32" or "bf16" (autocast for planning and updates; bf16 needs native support)
    compile_update: str = "off"  # torch.compile the world-model loss: "off", "default", "reduce-overhead" (GPU)
    # per task (None: unconstrained), resolved to the task's own action dims; None: no task has any
    constraints: tuple[ActionConstraints | None, ...] | None = None

    def __post_init__(self):
        if self.constraints is not None:
            if len(self.constraints) != self.model.num_tasks:
                raise ValueError(
                    f"{len(self.constraints)} constraint entries for {self.model.num_tasks} tasks; "
                    f"give one per task (None for an unconstrained task)"
                )
            for i, c in enumerate(self.constraints):
                if c is not None and (c.lo is None or len(c.lo) > self.model.action_dim):
                    raise ValueError(
                        f"constraints of task {i} must be resolved (ActionConstraints.resolved) to "
                        f"at most action_dim={self.model.action_dim} dims"
                    )
        if len(self.discounts) != self.model.num_tasks:
            raise ValueError(f"{len(self.discounts)} discounts for {self.model.num_tasks} tasks; give one per task")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.compile_update not in COMPILE_MODES:
            raise ValueError(f"compile_update must be one of {COMPILE_MODES}, got {self.compile_update!r}")

    @property
    def can_terminate(self) -> tuple[bool, ...]:
        """One flag per task (beside `discounts`): episodes of that task can end early."""
        return self.model.can_terminate or (False,) * self.model.num_tasks


def discount_from_episode_length(episode_length: int, denom: float = 5.0, lo: float = 0.95, hi: float = 0.995) -> float:
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
    task_language=None,
    language_encoder: str | None = None,
    can_terminate: tuple[bool, ...] | list[bool] | None = None,
    compile_update: str = "off",
    constraints=None,
) -> AgentConfig:
    """Assemble an AgentConfig from a preset name plus overrides (e.g. from Hydra).

    `task_descriptors` ([num_tasks, D], one row per task) are needed for
    `model.task_conditioning` with a descriptor ('descriptor', 'both', ...); they are standardised
    with their own per-feature mean/std, which stay fixed for tasks added later. `task_language`
    ([num_tasks, E] text embeddings) and `language_encoder` (its name and version) are needed for a
    conditioning with 'language'. `can_terminate` (one flag per
    task, e.g. `TaskSet.can_terminate()`; None: no task terminates) gives the model a termination
    head unless `model.termination_head` is false. `constraints` (one resolved ActionConstraints or None
    per task) limit the planner's actions; None or all None: constraints off."""
    dims: dict[str, Any] = model_preset(model_size)
    dims.update(checked_options(ModelConfig, model))
    parts = conditioning_parts(dims.get("task_conditioning", "table"))
    if task_descriptors is not None and "descriptor" in parts:
        rows = [[float(x) for x in r] for r in task_descriptors]
        mean, std = descriptor_stats(rows)
        dims.update(task_descriptors=tuple(map(tuple, rows)), descriptor_mean=mean, descriptor_std=std)
    if task_language is not None and "language" in parts:
        dims.update(
            task_language=tuple(tuple(float(x) for x in r) for r in task_language), language_encoder=language_encoder
        )
    if can_terminate is not None:
        dims["can_terminate"] = tuple(bool(x) for x in can_terminate)
    mc = ModelConfig(
        obs_dim=int(obs_dim),
        action_dim=int(action_dim),
        num_tasks=len(episode_lengths),
        model_size=str(model_size),
        **{k: v for k, v in dims.items() if k not in ("obs_dim", "action_dim", "num_tasks", "model_size")},
    )
    return AgentConfig(
        model=mc,
        optim=OptimConfig(**checked_options(OptimConfig, optim)),
        planner=PlannerConfig(**checked_options(PlannerConfig, planner)),
        discounts=tuple(discount_from_episode_length(int(L)) for L in episode_lengths),
        device=device,
        precision=precision,
        compile_update=compile_update,
        constraints=None if constraints is None or all(c is None for c in constraints) else tuple(constraints),
    )


__all__ = [
    "MODEL_PRESETS",
    "TASK_CONDITIONINGS",
    "conditioning_parts",
    "ModelConfig",
    "descriptor_stats",
    "OptimConfig",
    "PlannerConfig",
    "AgentConfig",
    "model_preset",
    "planner_iterations",
    "discount_from_episode_length",
    "make_agent_config",
    "checked_options",
    "replace",
]
