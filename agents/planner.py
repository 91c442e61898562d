"""Batched MPPI planning in the latent space of a WorldModel.

One call plans for B observations at once, each row with its own task (and so its own
action mask and discount), its own warm start and its own random stream: a row's result
does not depend on which other rows share the batch.

Per row: encode once; roll out and score `num_pi_trajs` policy-prior trajectories (once per
call); then for each iteration (`mppi_iteration`) sample Gaussian action sequences around the
current mean, score
J = sum_k gamma^k r(z_k, a_k) + gamma^H Q(z_H, pi(z_H)), keep the top `num_elites`,
refit mean/std with temperature-weighted elite scores. Execute the first action of an
elite drawn by score; keep the mean so the next call starts from it shifted by one step.

All random numbers of a call come from one batched counter-based draw (agents/noise.py): the
number of ops per call does not grow with B. `cfg.compile` runs the iteration through torch.compile.

Action constraints (optional, per row: `PlanConstraints`): bounds lo <= a <= hi and a rate limit
|a_t - a_{t-1}| <= r. Every Gaussian sample, every policy-prior trajectory, the warm start and the
refit mean are projected step by step (`project_sequences`): step 0 relative to the row's previous
executed action, step t relative to the sequence's own step t-1, then clipped to the bounds; so
elites and the executed action are feasible too. At an episode start (`PlannerState.reset`) there is
no previous action: step 0 is measured from the task's rest action if it has one, else it obeys the
bounds only. Without constraints (None) no extra op touches the plan: plans are as before.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from agents.config import VIOLATION_TOL, ActionConstraints, PlannerConfig, planner_iterations
from agents.noise import counter_draw, row_key
from agents.world_model import WorldModel


@dataclass
class PlannerState:
    """Per-row warm-start means and random streams; one instance per group of envs.

    Row b's noise is a counter-based draw (agents/noise.py) keyed by keys[b] and counted by
    counters[b], so all rows draw in one batched call and a row's noise does not depend on its
    batch-mates."""

    prev_mean: torch.Tensor  # [B, H, A]
    has_prev: torch.Tensor  # [B] bool: False at episode start (no warm start)
    keys: torch.Tensor  # [B, 2] int64: the 32-bit Philox key words of each row's stream
    counters: torch.Tensor  # [N >= B] int64: plan calls drawn by each stream so far
    head_generator: torch.Generator  # picks the 2 Q heads for the terminal value, shared by rows
    seed: int = 0
    calls: int = field(default=0)
    counter_rows: torch.Tensor | None = None  # [B] this state's rows in `counters` (None: all of them)
    # the action each row executed last (constrained runs only): the rate limit's reference
    prev_action: torch.Tensor | None = None  # [B, A]
    has_prev_action: torch.Tensor | None = None  # [B] bool: False at episode start

    @classmethod
    def create(
        cls,
        batch_size: int,
        horizon: int,
        action_dim: int,
        seed: int = 0,
        device: torch.device | str = "cpu",
        row_ids: list[int] | None = None,
    ) -> PlannerState:
        """`row_ids` name each row's random stream (default 0..B-1): the same (seed, row id)
        gives the same noise whichever batch the row is planned in."""
        row_ids = list(range(batch_size)) if row_ids is None else list(row_ids)
        if len(row_ids) != batch_size:
            raise ValueError(f"{len(row_ids)} row ids for {batch_size} rows")
        keys = torch.tensor([row_key(seed, b) for b in row_ids], dtype=torch.int64, device=device)
        hg = torch.Generator(device="cpu")
        hg.manual_seed(sum(w << (32 * i) for i, w in enumerate(row_key(seed, -1))) % (2**63 - 1))
        return cls(
            prev_mean=torch.zeros(batch_size, horizon, action_dim, device=device),
            has_prev=torch.zeros(batch_size, dtype=torch.bool, device=device),
            keys=keys.view(batch_size, 2),
            counters=torch.zeros(batch_size, dtype=torch.int64, device=device),
            head_generator=hg,
            seed=seed,
            prev_action=torch.zeros(batch_size, action_dim, device=device),
            has_prev_action=torch.zeros(batch_size, dtype=torch.bool, device=device),
        )

    @property
    def batch_size(self) -> int:
        return self.prev_mean.shape[0]

    def select(self, rows: list[int]) -> PlannerState:
        """A state for a subset of rows (sharing their random streams: its draws advance this state's)."""
        idx = torch.as_tensor(rows, dtype=torch.long, device=self.prev_mean.device)
        return PlannerState(
            prev_mean=self.prev_mean[idx].clone(),
            has_prev=self.has_prev[idx].clone(),
            keys=self.keys[idx],
            counters=self.counters,
            head_generator=self.head_generator,
            seed=self.seed,
            calls=self.calls,
            counter_rows=idx if self.counter_rows is None else self.counter_rows[idx],
            prev_action=self.last_action()[0][idx].clone(),
            has_prev_action=self.last_action()[1][idx].clone(),
        )

    def clone(self) -> PlannerState:
        """An independent copy: planning with it gives what planning with this state would, and
        advances neither this state's streams nor its warm start."""
        hg = torch.Generator(device="cpu")
        hg.set_state(self.head_generator.get_state())

        def copy(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.clone()

        return PlannerState(
            prev_mean=self.prev_mean.clone(),
            has_prev=self.has_prev.clone(),
            keys=self.keys.clone(),
            counters=self.counters.clone(),
            head_generator=hg,
            seed=self.seed,
            calls=self.calls,
            counter_rows=copy(self.counter_rows),
            prev_action=copy(self.prev_action),
            has_prev_action=copy(self.has_prev_action),
        )

    def draw(self, num_normal: int, num_uniform: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This call's noise for every row in one batched draw: normal [B, num_normal] and uniform
        [B, num_uniform]; advances each row's stream."""
        rows = self.counter_rows
        counters = self.counters if rows is None else self.counters[rows]
        out = counter_draw(self.keys, counters, num_normal, num_uniform)
        if rows is None:
            self.counters += 1
        else:
            self.counters[rows] += 1
        return out

    def reset(self, rows: list[int] | torch.Tensor | None = None) -> None:
        """Forget the warm start and the previous action of `rows` (all rows if None): call at episode start."""
        if rows is None:
            self.has_prev.zero_()
            self.last_action()[1].zero_()
        else:
            idx = torch.as_tensor(rows, dtype=torch.long, device=self.has_prev.device)
            self.has_prev[idx] = False
            self.last_action()[1][idx] = False

    def record_actions(self, actions: torch.Tensor) -> None:
        """actions [B, A] were executed: the next step's rate limit is measured from them."""
        prev_action, has_prev_action = self.last_action()
        self.prev_action = actions.to(prev_action.device, prev_action.dtype).clone()
        self.has_prev_action = torch.ones_like(has_prev_action)

    def last_action(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(prev_action [B, A], has_prev_action [B]); PlannerState.create always sets both."""
        if self.prev_action is None or self.has_prev_action is None:
            raise ValueError("this PlannerState has no previous-action rows; build it with PlannerState.create")
        return self.prev_action, self.has_prev_action


@dataclass
class PlanConstraints:
    """Per-row action limits of one plan call; padded dims carry [-1, 1] and no rate limit (the
    action mask zeroes them). lo, hi, rate, rest [B, A] (rate inf: no limit); has_rest [B] bool."""

    lo: torch.Tensor
    hi: torch.Tensor
    rate: torch.Tensor
    rest: torch.Tensor
    has_rest: torch.Tensor

    def first_reference(self, state: PlannerState) -> tuple[torch.Tensor, torch.Tensor]:
        """What step 0 of a row is measured from -> (reference [B, A], rate [B, A]): the previous
        executed action; at an episode start the rest action, or none (rate inf: bounds only)."""
        prev_action, has_prev_action = state.last_action()
        has = has_prev_action.view(-1, 1)
        ref = torch.where(has, prev_action, self.rest)
        rate = torch.where(has | self.has_rest.view(-1, 1), self.rate, torch.full_like(self.rate, float("inf")))
        return ref, rate

    def rows(self, rows: slice) -> PlanConstraints:
        return PlanConstraints(*(getattr(self, k)[rows] for k in self.__dataclass_fields__))


class ConstraintTable:
    """Per-task constraints as tensors [T, A] (A: the padded action dim), indexed by task per call."""

    def __init__(
        self, constraints: tuple[ActionConstraints | None, ...], action_dim: int, device: torch.device | str = "cpu"
    ):
        T = len(constraints)
        self.lo = torch.full((T, action_dim), -1.0)
        self.hi = torch.ones(T, action_dim)
        self.rate = torch.full((T, action_dim), float("inf"))
        self.rest = torch.zeros(T, action_dim)
        self.has_rest = torch.zeros(T, dtype=torch.bool)
        for i, c in enumerate(constraints):
            if c is None:
                continue
            if c.lo is None or c.hi is None or c.max_delta is None:
                raise ValueError(f"task {i}'s constraints are not resolved (use ActionConstraints.resolved): {c}")
            n = len(c.lo)
            self.lo[i, :n], self.hi[i, :n] = torch.tensor(c.lo), torch.tensor(c.hi)
            self.rate[i, :n] = torch.tensor(c.max_delta)
            if c.rest is not None:
                self.rest[i, :n], self.has_rest[i] = torch.tensor(c.rest), True
        for k in ("lo", "hi", "rate", "rest", "has_rest"):
            setattr(self, k, getattr(self, k).to(device))

    def for_rows(self, task: torch.Tensor) -> PlanConstraints:
        """task [B] int64 -> the rows' PlanConstraints."""
        task = task.to(self.lo.device)
        return PlanConstraints(self.lo[task], self.hi[task], self.rate[task], self.rest[task], self.has_rest[task])

    def violations(
        self, task: torch.Tensor, actions: torch.Tensor, prev: torch.Tensor, has_prev: torch.Tensor
    ) -> torch.Tensor:
        """Which executed actions break their task's limits (beyond VIOLATION_TOL): task [B], actions and
        prev [B, A] (the row's previous action), has_prev [B] bool (False at an episode start: measured
        from the rest action if any, else bounds only) -> [B] bool."""
        c = self.for_rows(task)
        a, prev = actions.to(c.lo.device, torch.float64), prev.to(c.lo.device, torch.float64)
        bad = ((a < c.lo - VIOLATION_TOL) | (a > c.hi + VIOLATION_TOL)).any(1)
        has = has_prev.to(c.lo.device).view(-1, 1)
        ref = torch.where(has, prev, c.rest.double())
        rate = torch.where(has | c.has_rest.view(-1, 1), c.rate.double(), torch.full_like(a, float("inf")))
        return bad | ((a - ref).abs() > rate + VIOLATION_TOL).any(1)


def project_sequences(
    actions: torch.Tensor, ref: torch.Tensor, first_rate: torch.Tensor, c: PlanConstraints
) -> torch.Tensor:
    """Feasible action sequences: actions [B, H, N, A] (N sequences per row), ref and first_rate [B, A]
    (step 0's reference and rate limit) -> [B, H, N, A]. Step t is clipped to
    [max(lo, a_{t-1} - r), min(hi, a_{t-1} + r)] with a_{-1} = ref, a_{t-1} the projected step t-1.
    A reference inside [lo, hi] keeps every interval non-empty (r > 0)."""
    lo, hi, rate = c.lo.unsqueeze(1), c.hi.unsqueeze(1), c.rate.unsqueeze(1)  # [B, 1, A]
    prev, r = ref.unsqueeze(1), first_rate.unsqueeze(1)
    steps = []
    for t in range(actions.shape[1]):
        prev = torch.minimum(torch.maximum(actions[:, t], torch.maximum(lo, prev - r)), torch.minimum(hi, prev + r))
        steps.append(prev)
        r = rate
    return torch.stack(steps, dim=1)


@dataclass
class PlanInfo:
    iterations: int  # MPPI iterations actually run (fewer than configured if the deadline hit)
    elapsed_ms: float
    mean: torch.Tensor  # [B, H, A] refit mean after the last iteration
    std: torch.Tensor  # [B, H, A]
    elite_actions: torch.Tensor  # [B, H, E, A]
    elite_value: torch.Tensor  # [B, E]
    elite_index: torch.Tensor  # [B, E] indices of the elites among the N samples of the last iteration
    chosen_value: torch.Tensor  # [B] predicted return of the executed elite sequence


@torch.no_grad()
def estimate_value(
    model: WorldModel,
    z: torch.Tensor,
    actions: torch.Tensor,
    task: torch.Tensor,
    discount: torch.Tensor,
    term_eps: torch.Tensor,
    heads: torch.Tensor,
    termination: str = "hard",
) -> torch.Tensor:
    """Predicted return of action sequences. z [B, N, L], actions [B, H, N, A], task [B, 1],
    discount [B, 1, 1], term_eps [B, N, A] noise for the terminal policy action -> [B, N, 1].
    For tasks that can terminate, rewards and the terminal value after a predicted termination drop out
    ("hard"), or count with the predicted probability of being alive ("soft"); "off" ignores the head
    (planner.termination)."""
    G = torch.zeros(*z.shape[:-1], 1, device=z.device, dtype=torch.float32)
    scale = torch.ones_like(discount, dtype=torch.float32)
    alive = torch.ones_like(
        G
    )  # 0 after a predicted termination (soft: P(alive)); exactly 1 for tasks that never terminate
    for t in range(actions.shape[1]):
        a = actions[:, t]
        G = G + scale * alive * model.two_hot.decode(model.reward(z, a, task))
        z = model.next(z, a, task)
        if termination != "off" and model.termination_head is not None:
            alive = alive * model.alive(z, task, soft=termination == "soft")
        scale = scale * discount
    a_term, _ = model.pi(z, task, eps=term_eps)
    return G + scale * alive * model.Q(z, a_term, task, mode="avg", heads=heads).float()


@torch.no_grad()
def plan_batch(
    model: WorldModel,
    obs: torch.Tensor,
    task: torch.Tensor,
    state: PlannerState,
    cfg: PlannerConfig,
    discounts: torch.Tensor,
    *,
    eval_mode: bool = False,
    autocast_dtype: torch.dtype | None = None,
    clock: Callable[[], float] = time.perf_counter,
    constraints: PlanConstraints | None = None,
) -> tuple[torch.Tensor, PlanInfo]:
    """Plan one action per row.

    obs [B, O] (padded), task [B] int64, discounts [num_tasks] -> actions [B, A] in [-1, 1]
    with padded dims exactly 0. `cfg.deadline_ms` stops refining once the budget is spent
    (at least one iteration always runs); `clock` returns seconds and can be injected.
    Rows are planned `cfg.rows_per_pass` at a time (None: all rows on GPU; on CPU as many as keep a
    pass's hidden activations in cache, `cpu_rows_per_pass`). Results do not depend on the split.
    `constraints` (per row, see the module docstring): every sequence, the refit mean, the warm
    start and the returned action obey them, and the returned action becomes the rows' previous
    action (`state.record_actions`); None: only the [-1, 1] box, as without constraints.
    """
    with model.cached_task_embeddings():  # embeddings: one evaluation per call, not per model call
        return _plan_batch(model, obs, task, state, cfg, discounts, eval_mode, autocast_dtype, clock, constraints)


# hidden activations of one CPU pass (rows x samples x MLP width): 2 rows of the 1M model at 512 samples,
# where 2 rows per pass beat all rows at once (B=32: 147 vs 240 ms/action; B=8: 1.31 vs 1.96 s)
_CPU_PASS_ACTIVATIONS = 2 * 512 * 384


def cpu_rows_per_pass(num_samples: int, mlp_dim: int) -> int:
    """Rows per pass on CPU: as many as fit _CPU_PASS_ACTIVATIONS, at least 2 (1M/5M at 512 samples: 2;
    the tiny model at 128 samples: 24, where one pass of 18 rows is 1.9x faster than passes of 2)."""
    return max(2, _CPU_PASS_ACTIVATIONS // (num_samples * mlp_dim))


def _plan_batch(model, obs, task, state, cfg, discounts, eval_mode, autocast_dtype, clock, constraints):
    start = clock()
    B = obs.shape[0]
    if state.batch_size != B:
        raise ValueError(f"planner state holds {state.batch_size} rows but obs has {B}")
    H, N, P, E = cfg.horizon, cfg.num_samples, cfg.num_pi_trajs, cfg.num_elites
    A = model.cfg.action_dim
    if state.prev_mean.shape[1:] != (H, A):
        raise ValueError(
            f"planner state is for horizon/action dim {tuple(state.prev_mean.shape[1:])}, config asks for {(H, A)}"
        )
    iters = planner_iterations(cfg, A)
    heads = torch.randperm(model.cfg.num_q, generator=state.head_generator)[:2].to(obs.device)
    # all noise of all rows in one draw: a fixed number of ops whatever B is
    sizes = {
        "pi": H * P * A,
        "pi_term": P * A,
        "samples": iters * H * (N - P) * A,
        "term": iters * (N - P) * A,
        "explore": A,
    }
    normal, gumbel_u = state.draw(sum(sizes.values()), E)
    eps = dict(zip(sizes, normal.split(list(sizes.values()), dim=1), strict=False))
    noise = PlanNoise(
        pi=eps["pi"].view(B, H, P, A),
        pi_term=eps["pi_term"].view(B, P, A),
        samples=eps["samples"].view(B, iters, H, N - P, A),
        term=eps["term"].view(B, iters, N - P, A),
        explore=eps["explore"],
        gumbel_u=gumbel_u,
    )
    warm_mean = torch.zeros(B, H, A, device=obs.device)
    warm_mean[:, :-1] = torch.where(state.has_prev.view(B, 1, 1), state.prev_mean[:, 1:], warm_mean[:, :-1])
    first: tuple[torch.Tensor, torch.Tensor] | None = None
    if constraints is not None:
        if constraints.lo.shape != (B, A):
            raise ValueError(
                f"constraints are for {tuple(constraints.lo.shape)} rows x action dims, the call has "
                f"{(B, A)}; build them with ConstraintTable.for_rows(task)"
            )
        ref, first_rate = constraints.first_reference(state)  # reference and rate limit of each row's step 0
        first = (ref, first_rate)
        warm_mean = project_sequences(warm_mean.unsqueeze(2), ref, first_rate, constraints).squeeze(2)

    per_pass = cfg.rows_per_pass or (cpu_rows_per_pass(N, model.cfg.mlp_dim) if obs.device.type == "cpu" else B)
    passes = -(-B // per_pass)
    parts = []
    for k, lo in enumerate(range(0, B, per_pass)):
        rows = slice(lo, min(B, lo + per_pass))
        # each pass gets its share of the budget, so later rows are not starved
        deadline_at = None if cfg.deadline_ms is None else start + cfg.deadline_ms * 1e-3 * (k + 1) / passes
        cons = (
            None if constraints is None or first is None else (constraints.rows(rows), first[0][rows], first[1][rows])
        )
        parts.append(
            _plan_rows(
                model,
                obs[rows],
                task[rows],
                warm_mean[rows],
                noise.rows(rows),
                cfg,
                iters,
                discounts,
                heads,
                eval_mode,
                autocast_dtype,
                clock,
                deadline_at,
                cons,
            )
        )
    action = torch.cat([a for a, _ in parts])
    infos = [i for _, i in parts]
    info = PlanInfo(
        iterations=min(i.iterations for i in infos),
        elapsed_ms=(clock() - start) * 1e3,
        **{
            k: torch.cat([getattr(i, k) for i in infos])
            for k in ("mean", "std", "elite_actions", "elite_value", "elite_index", "chosen_value")
        },
    )
    state.prev_mean = info.mean.detach().clone()
    state.has_prev = torch.ones_like(state.has_prev)
    if constraints is not None:
        state.record_actions(action)
    state.calls += 1
    return action, info


@dataclass
class PlanNoise:
    """All random numbers of one plan call (standard normal unless said otherwise)."""

    pi: torch.Tensor  # [B, H, P, A] policy-prior rollouts
    pi_term: torch.Tensor  # [B, P, A] terminal policy action of the prior rollouts
    samples: torch.Tensor  # [B, iters, H, N - P, A] Gaussian action samples
    term: torch.Tensor  # [B, iters, N - P, A] terminal policy action of the samples
    explore: torch.Tensor  # [B, A] exploration noise on the executed action
    gumbel_u: torch.Tensor  # [B, E] uniform (0, 1): which elite is executed

    def rows(self, rows: slice) -> PlanNoise:
        return PlanNoise(**{k: getattr(self, k)[rows] for k in self.__dataclass_fields__})


@torch.no_grad()
def mppi_iteration(
    model: WorldModel,
    zs,
    mean,
    std,
    sample_eps,
    term_eps,
    pi_actions,
    pi_value,
    mask,
    task,
    gamma,
    heads,
    cfg: PlannerConfig,
    cons=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One MPPI refinement: sample around mean/std, score with the policy-prior trajectories, refit
    mean/std to the temperature-weighted elites.

    zs [B, N - P, L] start latents, mean/std [B, H, A], sample_eps [B, H, N - P, A], term_eps
    [B, N - P, A], pi_actions [B, H, P, A] and pi_value [B, P] (scored once per call), mask [B, A],
    cons None or (PlanConstraints, reference [B, A], first rate [B, A]): samples and the refit mean are projected
    -> mean, std [B, H, A], elite_actions [B, H, E, A], elite_value, elite_index, score [B, E]."""
    B, H, A = mean.shape
    E = cfg.num_elites
    samples = (mean.unsqueeze(2) + std.unsqueeze(2) * sample_eps).clamp(-1, 1) * mask.view(B, 1, 1, A)
    if cons is not None:
        samples = project_sequences(samples, cons[1], cons[2], cons[0])
    value = estimate_value(model, zs, samples, task, gamma, term_eps, heads, cfg.termination).squeeze(-1)
    actions = torch.cat([pi_actions, samples], dim=2)  # [B, H, N, A]
    value = torch.cat([pi_value, value], dim=1).nan_to_num(0.0)  # [B, N]
    elite_value, elite_index = torch.topk(value, E, dim=1)
    elite_actions = torch.gather(actions, 2, elite_index.view(B, 1, E, 1).expand(B, H, E, A))
    score = torch.softmax(cfg.temperature * elite_value, dim=1)  # [B, E]
    w = score.view(B, 1, E, 1)
    mean = (w * elite_actions).sum(2)
    std = ((w * (elite_actions - mean.unsqueeze(2)).pow(2)).sum(2)).sqrt()
    std = std.clamp(cfg.min_std, cfg.max_std) * mask.unsqueeze(1)
    mean = mean * mask.unsqueeze(1)
    if cons is not None:  # a convex mix of feasible sequences is feasible up to rounding; project it exactly
        mean = project_sequences(mean.unsqueeze(2), cons[1], cons[2], cons[0]).squeeze(2)
    return mean, std, elite_actions, elite_value, elite_index, score


_COMPILED: dict = {}


def _iteration_fn(mode: str, device: torch.device):
    """mppi_iteration, eager ("off") or compiled once per process with torch.compile(mode=...).
    "reduce-overhead" (CUDA graphs) needs a GPU: on CPU it is plain compile."""
    if mode == "off":
        return mppi_iteration
    if mode == "reduce-overhead" and device.type != "cuda":
        mode = "default"
    if mode not in _COMPILED:
        _COMPILED[mode] = torch.compile(mppi_iteration, mode=mode, dynamic=False)
    return _COMPILED[mode]


def _plan_rows(
    model,
    obs,
    task,
    mean,
    noise,
    cfg,
    iters,
    discounts,
    heads,
    eval_mode,
    autocast_dtype,
    clock,
    deadline_at,
    cons=None,
):
    """MPPI for rows planned in one pass: obs [B, O], task [B], mean [B, H, A] warm start, cons as in
    mppi_iteration."""
    B = obs.shape[0]
    device = obs.device
    H, N, P = cfg.horizon, cfg.num_samples, cfg.num_pi_trajs
    A = model.cfg.action_dim
    mask = model.mask(task).to(device)  # [B, A]
    gamma = discounts.to(device)[task].view(B, 1, 1)
    task_b1 = task.view(B, 1)

    amp = (
        torch.autocast(device_type=device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    with amp:
        z = model.encode(obs, task)  # [B, L]
        # policy-prior trajectories: rolled out and scored once per call (their noise is fixed for
        # the call, so re-scoring them every iteration would give the same values)
        pi_actions = torch.empty(B, H, P, A, device=device)
        pi_value = torch.empty(B, P, device=device)
        if P > 0:
            zp = z.unsqueeze(1).expand(B, P, z.shape[-1])
            # (prev, this step's rate, later steps' rate, lo, hi) [B, 1, A] of the projection, or None: unconstrained
            proj: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
            if cons is not None:
                c = cons[0]
                proj = (
                    cons[1].unsqueeze(1),
                    cons[2].unsqueeze(1),
                    c.rate.unsqueeze(1),
                    c.lo.unsqueeze(1),
                    c.hi.unsqueeze(1),
                )
            for t in range(H):
                pi_actions[:, t] = model.pi(zp, task_b1, eps=noise.pi[:, t])[0].float()
                if proj is not None:  # project before the step, so the rollout follows the feasible action
                    prev, rate, later_rate, lo, hi = proj
                    prev = torch.minimum(
                        torch.maximum(pi_actions[:, t], torch.maximum(lo, prev - rate)), torch.minimum(hi, prev + rate)
                    )
                    pi_actions[:, t] = prev
                    proj = (prev, later_rate, later_rate, lo, hi)
                if t < H - 1:
                    zp = model.next(zp, pi_actions[:, t], task_b1)
            z_pi = z.unsqueeze(1).expand(B, P, z.shape[-1])
            pi_value = estimate_value(
                model, z_pi, pi_actions, task_b1, gamma, noise.pi_term, heads, cfg.termination
            ).squeeze(-1)
        zs = z.unsqueeze(1).expand(B, N - P, z.shape[-1])

        std = torch.full((B, H, A), cfg.max_std, device=device) * mask.unsqueeze(1)
        mean = mean * mask.unsqueeze(1)
        iteration = _iteration_fn(cfg.compile, device)
        graphs = cfg.compile == "reduce-overhead" and device.type == "cuda"
        done = 0
        score: torch.Tensor | None = None
        for i in range(iters):
            if graphs:  # each iteration is a new CUDA-graph replay; its inputs are the last one's outputs
                torch.compiler.cudagraph_mark_step_begin()
            mean, std, elite_actions, elite_value, elite_index, score = iteration(
                model,
                zs,
                mean,
                std,
                noise.samples[:, i],
                noise.term[:, i],
                pi_actions,
                pi_value,
                mask,
                task_b1,
                gamma,
                heads,
                cfg,
                cons,
            )
            done = i + 1
            if deadline_at is not None and clock() >= deadline_at:
                break
        if score is None:
            raise ValueError(f"MPPI needs at least one iteration per plan call, got {iters}")
        if graphs:  # graph outputs are overwritten by the next replay: keep our own copies
            mean, std, elite_actions, elite_value, elite_index, score = (
                mean.clone(),
                std.clone(),
                elite_actions.clone(),
                elite_value.clone(),
                elite_index.clone(),
                score.clone(),
            )

    # draw the executed sequence among the elites in proportion to their score (Gumbel-max)
    gumbel = -torch.log(-torch.log(noise.gumbel_u.clamp(1e-20, 1 - 1e-7)))
    pick = torch.argmax(torch.log(score + 1e-20) + gumbel, dim=1)  # [B]
    first = elite_actions[torch.arange(B, device=device), 0, pick]  # [B, A]
    if not eval_mode:
        first = first + std[:, 0] * noise.explore
    action = first.clamp(-1, 1) * mask
    if cons is not None:  # exploration noise can leave the feasible set: project the executed action
        action = project_sequences(action.view(B, 1, 1, A), cons[1], cons[2], cons[0]).view(B, A)
    info = PlanInfo(
        iterations=done,
        elapsed_ms=0.0,
        mean=mean,
        std=std,
        elite_actions=elite_actions,
        elite_value=elite_value,
        elite_index=elite_index,
        chosen_value=elite_value.gather(1, pick.view(B, 1)).squeeze(1),
    )
    return action, info


@torch.no_grad()
def prior_action(
    model: WorldModel,
    obs: torch.Tensor,
    task: torch.Tensor,
    state: PlannerState,
    *,
    eval_mode: bool = False,
    constraints: PlanConstraints | None = None,
) -> torch.Tensor:
    """Act with the policy prior alone (no planning): obs [B, O], task [B] -> actions [B, A], the
    prior's mean in eval mode, else a sample drawn from the rows' streams; padded dims 0. With
    `constraints` the action is projected (step 0 rule of `plan_batch`) and recorded as executed."""
    B, A = obs.shape[0], model.cfg.action_dim
    with model.cached_task_embeddings():
        z = model.encode(obs, task)
        eps = torch.zeros(B, A, device=obs.device) if eval_mode else state.draw(A, 0)[0]
        action = model.pi(z, task, eps=eps)[0].float().clamp(-1, 1) * model.mask(task).to(obs.device)
    if constraints is not None:
        ref, rate = constraints.first_reference(state)
        action = project_sequences(action.view(B, 1, 1, A), ref, rate, constraints).view(B, A)
        state.record_actions(action)
    return action
