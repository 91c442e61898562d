"""What the loop (distributed/loop.py) is given, and how it waits for it: `Parts`, the same type from
every backend (distributed/local.py in process, distributed/ray_parts.py on Ray), each backend a module
with `check(cfg, task_set)` (refuses what it cannot run, before anything is written) and
`build(loop) -> Parts`.

    collector  a `Collector`: in-process env runner, env-runner actors + replay-shard actors, or none
    learners   `Learners`: one in-process Learner, or a Ray data-parallel group of Learner actors
    evaluator  `Evaluators`: one Evaluator (distributed/evaluator.py), in process or as a Ray actor

Every call returns a `Job`: finished at once in process, a wait on object refs under Ray, so the
loop runs the parts in turn in one process and overlaps them under Ray with the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class PartLost(Exception):
    """An actor of the parts died (its node was lost or its process killed) and the call had no
    `on_error` to absorb it; `.cause` is Ray's error. The loop rebuilds what it can (see Loop)."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


def ray_value(ref: Any, timeout: float | None = None) -> Any:
    """`ray.get` of one object ref: the value, whatever it is. (Ray types an actor handle's methods as Never,
    so `ray.get(handle.method.remote())` would be typed as its list overload.)"""
    import ray

    return ray.get(ref, timeout=timeout)


def _actor_lost_errors() -> tuple:
    from ray.exceptions import ObjectLostError, RayActorError

    return RayActorError, ObjectLostError


class Job:
    """A call's result: `Job(value)` is finished; `Job(refs=[...], finish=f)` waits on Ray refs and
    is `f(ray.get(refs))`; `on_error(exc)` (optional) turns an actor failure into a result, else
    `result()` raises PartLost. A job is done as soon as one of its actors is found dead (the others,
    ranks of a data-parallel group, would wait for it forever)."""

    def __init__(self, value=None, *, refs: list | None = None, finish=None, on_error=None):
        self.value, self.refs, self.finish, self.on_error = value, refs, finish, on_error
        self._ready: set = set()
        self._lost: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.refs is None or self._lost is not None or len(self._ready) == len(self.refs)

    def result(self) -> Any:  # whatever the call returned (finish() of the refs' values)
        if self.refs is None:
            return self.value
        import ray

        try:
            if self._lost is not None:
                raise self._lost
            values = ray.get(self.refs)
        except _actor_lost_errors() as exc:
            if self.on_error is None:
                raise PartLost(exc) from None
            return self.on_error(exc)
        return self.finish(values) if self.finish else values

    def _note_ready(self, refs) -> None:
        import ray

        for ref in refs:
            self._ready.add(ref)
            if self._lost is None:
                try:
                    ray.get(ref, timeout=0)  # ready: its value (or error) is local already
                except _actor_lost_errors() as exc:
                    self._lost = exc
                except Exception:  # noqa: BLE001  any other error is the caller's, at result()
                    pass


def wait_any(jobs, timeout: float = 1.0) -> list[Job]:
    """The jobs that are done (in-process ones at once; else block up to `timeout` for one ref)."""
    jobs = list(jobs)
    done = [j for j in jobs if j.done]
    if done or not jobs:
        return done
    import ray

    pending = [r for j in jobs for r in j.refs if r not in j._ready]
    ready, _ = ray.wait(pending, num_returns=1, timeout=timeout)
    for j in jobs:
        j._note_ready([r for r in ready if r in j.refs])
    return [j for j in jobs if j.done]


class Collector(Protocol):
    """Collects episodes into the run's replay store. `slots` calls may run at once (one per runner)."""

    slots: int

    def collect(self, slot: int, num_steps: int, seeding: bool, random_tasks=()) -> Job:
        """Step slot's envs `num_steps` times (at random while `seeding`, and for `random_tasks`); its
        value: {"collected", "episodes": [(task, return, success, length, weights version)], timings...}, or
        {"restarted": True, "slot", "error"} when the runner died and was restarted."""
        ...

    def set_weights(self, weights, version: int) -> None:
        """Plan with these weights (None: the learner's own model, shared in process) from now on."""

    def drain(self) -> list[dict] | None:
        """Return once every episode reported by collect() is committed to the store; with incidents found
        on the way (a restarted shard: {"kind", "line", "key", "shard", "episodes_lost"}; a correction of
        the counters: {"kind": None, "counter_delta": {task id: episodes}}) or None."""

    def close(self) -> None:
        """Commit what is pending and release the store."""


class NoCollector:
    """Offline runs collect nothing."""

    slots = 0

    def collect(self, slot: int, num_steps: int, seeding: bool, random_tasks=()) -> Job:
        raise RuntimeError("an offline run has no collector slots")

    def set_weights(self, weights, version: int) -> None:  # drain() and close() too: nothing to do
        pass

    def drain(self) -> None:
        pass

    close = drain


@dataclass
class Parts:
    """What a backend hands the loop; the same fields from every backend.

    publish_every: learner updates between weight publications (1 where the runner plans with the
    learner's own model, so its weights version is every update's). actors: Ray actor handles by role
    ("runners", "shards", "learners", "evaluator"), empty in process (fault-injection benches use them).
    agent: the in-process Agent where there is one (None on Ray). rebuild_learners: see below."""

    collector: Collector
    learners: Learners
    evaluator: Evaluators
    publish_every: int
    close: Callable[[], None]
    actors: dict[str, list] = field(default_factory=dict)
    agent: Any = None
    # a new learner group in place of one that lost a member, and the node(s) the old group ran on ("" if
    # unknown); None: the learner lives and dies with the driver
    rebuild_learners: Callable[[], tuple[Learners, str]] | None = None


def _first(values: list):
    return values[0]


class Members:
    """Plain objects, or Ray actors of their classes (`remote=True`), called alike: a call goes to
    every member (or to `members`) and returns a Job of their values, or of the first's (`first`)."""

    def __init__(self, members: list, remote: bool):
        self.members, self.remote = list(members), remote

    def call(self, method: str, *args, members: list | None = None, first: bool = False, **kw) -> Job:
        members = self.members if members is None else members
        pick = _first if first else None
        if self.remote:
            return Job(refs=[getattr(m, method).remote(*args, **kw) for m in members], finish=pick)
        values = [getattr(m, method)(*args, **kw) for m in members]
        return Job(pick(values) if pick else values)


class Evaluators(Members):
    """One Evaluator (distributed/evaluator.py), in process or as a Ray actor."""

    def evaluate(self, weights, version: int, **kw) -> Job:
        """Its evaluation of `weights` (None: it shares the learner's model)."""
        return self.call("evaluate", weights, version, first=True, **kw)


class Learners(Members):
    """The learners: one in-process Learner, or a data-parallel group of Learner actors, rank 0
    first. Every rank trains; rank 0 answers for the group where the ranks agree (train info,
    weights, agent state, diagnostics); the loop checks at the end that they do (`digests`)."""

    def __init__(self, ranks: list, remote: bool):
        super().__init__(ranks, remote)
        self.rank0 = self.members[:1]

    def train(self, n: int) -> Job:
        return self.call("train", n, first=True)

    def publish(self):
        """Rank 0's weights into the object store once, for every runner to load that one copy;
        None in process (runner and evaluator share the learner's model)."""
        return self.rank0[0].weights.remote() if self.remote else None

    def diagnostics(self, names: list[str], obs_dims: list[int], **kw) -> Job:
        return self.call("diagnostics", names, obs_dims, members=self.rank0, first=True, **kw)

    def agent_state(self) -> dict:
        return self.call("agent_state", members=self.rank0, first=True).result()

    def load_agent_state(self, state: dict) -> None:
        self.call("load_agent_state", state).result()

    def rng_states(self) -> list:
        return self.call("rng_state").result()

    def load_rng_states(self, states: list) -> None:
        if len(states) != len(self.members):
            print(
                f"checkpoint has {len(states)} learner RNG states for {len(self.members)} ranks: ranks start "
                f"fresh streams"
            )
            return
        for job in [self.call("load_rng_state", s, members=[m]) for m, s in zip(self.members, states, strict=False)]:
            job.result()

    def digests(self) -> list[str]:
        return self.call("param_digest").result()

    def replay_damage(self) -> dict:
        """Damaged replay data as rank 0's batch source met it (all ranks share the shards)."""
        return self.call("replay_damage", members=self.rank0, first=True).result()


def usable_shards(loop, n: int) -> list[int]:
    """Indices of the `n` replay shards the run writes (`<run_dir>/replay/shard-<i>`): the first n that open
    or do not exist yet. A shard whose metadata is unreadable is set aside whole, reported once, and left as
    it is on disk; a fresh shard takes its place."""
    from distributed.replay.layout import unreadable

    usable, i = [], 0
    while len(usable) < n:
        path = loop.run_dir / "replay" / f"shard-{i:03d}"
        why = unreadable(path)
        if why is None:
            usable.append(i)
        else:
            loop.incidents.report(
                "shard_set_aside",
                f"replay shard {path} set aside whole: {why}; its files are "
                f"left as they are and a new shard takes its place",
                key=str(path),
                shard=str(path),
                reason=why,
            )
        i += 1
    return usable
