"""The one training loop. Every mode is a choice of parts, not a copy of this loop:

    collector  in-process env runner | Ray env-runner actors + replay-shard actors | none (offline)
    learners   one in-process Learner | a Ray data-parallel group          (each with a batch source)
    evaluator  in-process | a Ray actor

`distributed/local.py` and `distributed/ray_parts.py` build the parts (distributed/parts.py says
what they are); their calls return `Job`s (finished at once in-process, Ray object refs under
Ray), so the Ray configuration overlaps collection, learning and evaluation while the in-process
one runs them in turn, and the code above that seam (rate limit, schedules, logging, checkpoints,
resume) is this file, once.

A checkpoint is a registry of named objects with state_dict()/load_state_dict() (agent, learner
RNGs, rate limiter, counters, the driver's RNGs, eval history), saved and restored the same way
in every mode, with `extra` metadata that readers of a run (diagnose, transfer) use.
"""

from __future__ import annotations

import importlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import torch
from tqdm import tqdm

from distributed.config import ConfigError, RunConfig, build_agent_config, check_run_dir, seed_steps, write_run_file
from distributed.incidents import Incidents, one_line
from distributed.parts import Job, PartLost, Parts, wait_any
from distributed.rate_limiter import RateLimiter
from distributed.run_log import RunLogger, plot_learning_curves
from distributed.storage import StoragePath, is_remote, storage_path

# the modules that build each backend's parts (distributed/parts.py: `check`, `build`)
BACKENDS = {"local": "distributed.local", "ray": "distributed.ray_parts"}

MAX_EVAL_RESENDS = (
    3  # an evaluation lost with its actor is sent again this many times in a row, then left to the schedule
)


# -- checkpoint registry -----------------------------------------------------------------------------
class Checkpoint:
    """Named objects saved together in `<run_dir>/checkpoint.pt` (loads with weights_only=True),
    plus `model.safetensors` from the `agent` entry. Writes are atomic and fsynced (one object
    each on an object store)."""

    def __init__(self, run_dir: StoragePath, items: dict):
        self.run_dir, self.items = storage_path(run_dir), items  # name -> object with state_dict()/load_state_dict()

    def save(self, extra: dict) -> dict:
        """Save every registered object; returns what was written (see `write`)."""
        state = {**{name: obj.state_dict() for name, obj in self.items.items()}, "extra": extra}
        self.write(state)
        return state

    def write(self, state: dict) -> None:
        from agents.checkpoint import write_checkpoint

        write_checkpoint(self.run_dir, state, state["agent"]["model"])

    def load_items(self, names: list[str]) -> dict | None:
        """Restore only the named objects from the run's checkpoint (a rebuilt learner group's state);
        None if there is no checkpoint yet."""
        from agents.checkpoint import CHECKPOINT_FILE, load_checkpoint

        if not (self.run_dir / CHECKPOINT_FILE).exists():
            return None
        state = load_checkpoint(self.run_dir)
        for name in names:
            self.items[name].load_state_dict(state[name])
        return state.get("extra", {})

    def load(self) -> dict | None:
        """Restore every registered object from the run's checkpoint; None if there is none."""
        from agents.checkpoint import CHECKPOINT_FILE, load_checkpoint

        if not (self.run_dir / CHECKPOINT_FILE).exists():
            return None
        try:
            state = load_checkpoint(self.run_dir)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        missing = [n for n in self.items if n not in state]
        if missing:  # e.g. an imported TD-MPC2 model: weights, no loop state yet
            print(f"{self.run_dir / CHECKPOINT_FILE} holds no {missing}: those start fresh")
        for name, obj in self.items.items():
            if name in state:
                obj.load_state_dict(state[name])
        return state.get("extra", {})


@dataclass
class Counters:
    env_steps: int = 0
    episodes: Counter = field(default_factory=Counter)  # task name -> committed episodes
    weights_version: int = 0
    runner_restarts: int = 0

    def state_dict(self) -> dict:
        return {**vars(self), "episodes": dict(self.episodes)}

    def load_state_dict(self, s: dict) -> None:
        self.env_steps, self.weights_version = int(s["env_steps"]), int(s["weights_version"])
        self.episodes = Counter({k: int(v) for k, v in s["episodes"].items()})
        self.runner_restarts = int(s.get("runner_restarts", 0))


class DriverRNG:
    """The driver process's Python, NumPy and torch generators (one process: also the learner's torch)."""

    def state_dict(self) -> dict:
        numpy = [v.tolist() if isinstance(v, np.ndarray) else v for v in np.random.get_state()]
        return {"python": json.dumps(random.getstate()), "numpy": json.dumps(numpy), "torch": torch.get_rng_state()}

    def load_state_dict(self, s: dict) -> None:
        v, state, gauss = json.loads(s["python"])
        random.setstate((v, tuple(state), gauss))
        np.random.set_state(tuple(json.loads(s["numpy"])))
        torch.set_rng_state(s["torch"])


class EvalHistory(list):
    def state_dict(self) -> dict:
        return {"rows": json.dumps(list(self))}

    def load_state_dict(self, s: dict) -> None:
        self[:] = json.loads(s["rows"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# -- the loop ------------------------------------------------------------------------------------------
class Loop:
    """Collect -> store -> learn -> evaluate -> checkpoint, for every mode.

    Construction checks everything (tasks, run directory, offline data) and writes nothing;
    `start()` writes run.json, builds the parts and resumes; `run()` trains to `cfg.steps`."""

    def __init__(self, cfg: RunConfig, *, agent=None, tasks: list[str] | None = None):
        """`agent` (optional, backend=local) continues an existing agent whose tasks are cfg.task's
        set, by id (a finetune); `tasks` (optional) limits collection and evaluation to those tasks."""
        from envs import load_task_set
        from envs.errors import UnknownNameError

        self.cfg = cfg
        try:
            self.task_set = load_task_set(cfg.task)
        except UnknownNameError as exc:
            raise ConfigError(str(exc)) from None
        self.names = list(self.task_set.names)
        self.tasks = list(tasks or [t.strip() for t in (cfg.only_tasks or "").split(",") if t.strip()] or self.names)
        missing = [t for t in self.tasks if t not in self.names]
        if missing:
            raise ConfigError(
                f"tasks {missing} are not in the task set {cfg.task!r}: only_tasks takes names of that set, "
                f"comma-separated and quoted: \"only_tasks='a,b'\""
            )
        if agent is not None and (cfg.backend != "local" or agent.cfg.model.num_tasks != len(self.names)):
            raise ConfigError(
                f"a given agent ({agent.cfg.model.num_tasks} tasks) continues only in backend=local "
                f"on its own task set ({cfg.task!r} has {len(self.names)})"
            )
        self.agent = agent
        try:
            self.agent_cfg = agent.cfg if agent is not None else build_agent_config(cfg, self.task_set)
        except ValueError as exc:  # a model option the agent's config refuses
            raise ConfigError(str(exc)) from None
        self.backend = importlib.import_module(BACKENDS[cfg.backend])  # check(cfg, task_set), build(loop)
        self.backend.check(cfg, self.task_set)
        check_run_dir(cfg, self.names, self.agent_cfg.model.language_encoder)
        if cfg.offline_data:
            check_offline_data(cfg.offline_data, self.task_set)
        self.run_dir = storage_path(cfg.run_dir)  # a Path, or an UPath for an object-store URI
        self.seed_steps = 0 if cfg.offline else seed_steps(cfg, self.task_set, self.tasks)
        self.limiter = RateLimiter(cfg.utd, min_inserts=self.seed_steps, max_lag=cfg.max_lag)
        self.counters = Counters()
        self.evals = EvalHistory()
        self.last_eval: dict | None = None
        self.version_updates: dict[int, int] = {}  # weights version -> updates when it was published
        self.lags: list[int] = []  # per collected episode: learner updates since its weights were published
        self._lag_mark = 0
        self.incidents = Incidents(self.run_dir)
        self.parts: Parts | None = None

    def built_parts(self) -> Parts:
        """The parts start() built (a run's actors, or the in-process objects)."""
        if self.parts is None:
            raise RuntimeError("the loop has no parts: start() builds them, shutdown() closes them")
        return self.parts

    # -- start-up ---------------------------------------------------------------------------------
    def start(self) -> None:
        from envs.describe import task_texts

        cfg = self.cfg
        seed_everything(cfg.seed)
        self.parts = self.backend.build(self)
        mc = self.agent_cfg.model
        write_run_file(
            cfg,
            self.names,
            {
                "obs_dim": self.task_set.max_obs_dim,
                "action_dim": self.task_set.max_action_dim,
                # whose embeddings of which texts the checkpoint's task_language rows are
                **(
                    {"text_encoder": mc.language_encoder, "task_texts": task_texts(self.names)}
                    if mc.uses_language
                    else {}
                ),
            },
        )
        self.logger = RunLogger(
            self.run_dir,
            cfg.to_dict(),
            wandb_mode=cfg.wandb_mode,
            project=cfg.wandb_project,
            group=cfg.task if len(self.names) > 1 else None,
        )
        learners = lambda: self.built_parts().learners  # noqa: E731  the group of the moment (it may be rebuilt)
        self.checkpoint = Checkpoint(
            self.run_dir,
            {
                "agent": SimpleNamespace(
                    state_dict=lambda: learners().agent_state(),
                    load_state_dict=lambda s: learners().load_agent_state(s),
                ),
                "learner_rng": SimpleNamespace(
                    state_dict=lambda: learners().rng_states(), load_state_dict=lambda s: learners().load_rng_states(s)
                ),
                "limiter": self.limiter,
                "counters": self.counters,
                "driver_rng": DriverRNG(),
                "evals": self.evals,
            },
        )
        if self.checkpoint.load() is not None:
            print(
                f"resumed {self.run_dir}: env step {self.counters.env_steps}, update {self.limiter.samples}, "
                f"{sum(self.counters.episodes.values())} episodes"
            )
        self._publish()

    @property
    def updates(self) -> int:
        return self.limiter.samples

    @property
    def env_steps(self) -> int:
        return self.counters.env_steps

    def progress(self) -> int:
        """What steps, eval_freq, checkpoint_freq and diag_freq count: env steps, or updates offline."""
        return self.limiter.samples if self.cfg.offline else self.counters.env_steps

    def _publish(self) -> None:
        self.counters.weights_version += 1
        self.version_updates[self.counters.weights_version] = self.updates
        self.built_parts().collector.set_weights(self.built_parts().learners.publish(), self.counters.weights_version)

    def _has_data(self) -> bool:
        """Something to learn from: offline data, or (online) every collected task's seed episodes."""
        if self.cfg.offline:
            return True
        if self.cfg.seed_episodes == 0:
            return sum(self.counters.episodes.values()) > 0
        return not self._seeding_tasks()

    def _seeding_tasks(self) -> list[int]:
        """Task ids whose envs have not yet finished `seed_episodes` episodes each (they act at random)."""
        need = self.cfg.seed_episodes * self.cfg.envs_per_task
        return [self.names.index(t) for t in self.tasks if self.counters.episodes[t] < need]

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> dict:
        if self.parts is None:
            self.start()
        cfg, collector = self.cfg, self.built_parts().collector
        jobs: dict[Job, tuple] = {}
        upcoming = lambda freq: (self.progress() // freq + 1) * freq  # noqa: E731  (freq > 0: check_config)
        every = lambda freq: upcoming(freq) if freq else None  # noqa: E731
        next_eval, next_ckpt, next_diag = upcoming(cfg.eval_freq), upcoming(cfg.checkpoint_freq), every(cfg.diag_freq)
        last_publish = self.updates
        bar = (
            tqdm(
                total=cfg.steps,
                initial=self.progress(),
                unit="upd" if cfg.offline else "step",
                dynamic_ncols=True,
                mininterval=2.0,
            )
            if cfg.progress
            else None
        )
        t0, steps0, updates0 = time.time(), self.env_steps, self.updates
        timing: dict = {}
        eval_losses = 0  # evaluations lost in a row (their actor died): sent again up to MAX_EVAL_RESENDS times
        while True:
            kinds = [k[0] for k in jobs.values()]
            if (
                self.progress() >= cfg.steps
                and "collect" not in kinds
                and "learn" not in kinds
                and (cfg.offline or self.limiter.allowed_samples() == 0 or not self._has_data())
            ):
                break  # online runs end with the update-to-data ratio met
            if self.progress() < cfg.steps and (self.limiter.can_insert() or not self._has_data()):
                busy = {k[1] for k in jobs.values() if k[0] == "collect"}
                seeding, random_tasks = self.env_steps < self.seed_steps, self._seeding_tasks()
                for slot in range(collector.slots):
                    if slot not in busy:
                        jobs[collector.collect(slot, cfg.collect_steps, seeding, random_tasks)] = ("collect", slot)
            if "learn" not in kinds and self._has_data():
                allowed = cfg.steps - self.updates if cfg.offline else self.limiter.allowed_samples()
                n = min(cfg.updates_per_round, allowed)
                if n > 0:
                    jobs[self.built_parts().learners.train(n)] = ("learn", n)
            for job in wait_any(jobs):
                kind = jobs.pop(job, None)
                if kind is None:  # a job of a learner group that was rebuilt meanwhile
                    continue
                try:
                    result = job.result()
                except PartLost as lost:  # a learner died (RayEvaluator turns a lost evaluation into a result)
                    # every rank goes, the group is rebuilt from the newest state
                    jobs = {j: k for j, k in jobs.items() if k[0] not in ("learn", "diag")}
                    self._rebuild_learners(lost)
                    last_publish = self.updates
                    continue
                if kind[0] == "collect":
                    self._record_collect(result)
                    timing[kind[1]] = result
                elif kind[0] == "learn":
                    self.limiter.record_samples(kind[1])
                    if self.updates - last_publish >= self.built_parts().publish_every:
                        self._publish()
                        last_publish = self.updates
                    ratio = (
                        {}
                        if cfg.offline or not self.limiter.inserts
                        else {
                            "updates_per_insert": self.updates / self.limiter.inserts,
                            "samples_per_insert": self.updates * cfg.batch_size / self.limiter.inserts,
                        }
                    )
                    self.logger.log(self.env_steps, {**result, "updates": self.updates, **ratio}, kind="train")
                elif kind[0] == "eval":
                    if self._evaluation(result) is not None:
                        self._record_eval(result)
                        eval_losses = 0
                    elif eval_losses < MAX_EVAL_RESENDS:  # lost with its actor: again, with the current weights
                        eval_losses += 1
                        jobs[self._evaluate()] = ("eval",)
                elif kind[0] == "diag":
                    self.logger.log(self.env_steps, result, kind="diag")
            kinds = [k[0] for k in jobs.values()]
            if next_diag is not None and self.progress() >= next_diag:
                if "diag" not in kinds and self.updates > 0 and self.progress() < cfg.steps:
                    jobs[self._diagnostics()] = ("diag",)
                next_diag = every(cfg.diag_freq)
            if self.progress() >= next_eval:
                if "eval" not in kinds and self.progress() < cfg.steps:
                    jobs[self._evaluate()] = ("eval",)
                next_eval = upcoming(cfg.eval_freq)
            if self.progress() >= next_ckpt:
                self.save()
                next_ckpt = upcoming(cfg.checkpoint_freq)
            if bar is not None and time.time() - bar.last_print_t >= bar.mininterval:
                el = max(time.time() - t0, 1e-9)
                last = self.last_eval
                bar.set_postfix(
                    sps=f"{(self.env_steps - steps0) / el:.0f}",
                    ups=f"{(self.updates - updates0) / el:.1f}",
                    eps=sum(self.counters.episodes.values()),
                    ret="-" if last is None else f"{last['episode_return']:.1f}",
                    refresh=False,
                )
                bar.n = min(self.progress(), cfg.steps)
                bar.refresh()
        for job, kind in list(jobs.items()):  # an evaluation or diagnostics still running
            result = job.result()
            if kind[0] != "eval":
                self.logger.log(self.env_steps, result, kind="diag")
            elif self._evaluation(result) is not None:  # a lost one is not sent again: the final evaluation follows
                self._record_eval(result)
        if bar is not None:
            bar.close()
        return self._finish(t0, steps0, updates0, timing)

    def _rebuild_learners(self, lost: PartLost) -> None:
        """A new learner group in place of one that lost a member, loaded from the newest state the driver
        reaches (the run's checkpoint; no checkpoint yet: fresh weights); the updates since then are lost and
        done again (the rate limiter goes back with them). Reported once as an incident."""
        parts = self.built_parts()
        if parts.rebuild_learners is None:
            raise lost.cause
        t0, before = time.time(), self.updates
        parts.learners, where = parts.rebuild_learners()
        state = self.checkpoint.load_items(["agent", "learner_rng"])
        restored = parts.learners.train(0).result()["updates"]
        self.limiter.samples = restored
        source = "the last checkpoint" if state else "fresh weights (no checkpoint yet)"
        self.incidents.report(
            "learners_rebuilt",
            f"a learner died ({one_line(lost.cause)}"
            f"{'; the group ran on ' + where if where else ''}); the group of "
            f"{len(parts.learners.members)} rank(s) was rebuilt from {source} at update "
            f"{restored} in {time.time() - t0:.1f} s; {before - restored} updates lost",
            key=(before, self.env_steps),
            updates_lost=before - restored,
            node=where,
            rebuild_s=round(time.time() - t0, 2),
        )
        self._publish()

    def _finish(self, t0: float, steps0: int, updates0: int, timing: dict) -> dict:
        """Final checkpoint first; then the final evaluation and diagnostics, whose failure is
        logged and loses no training."""
        self._publish()
        state = self.save()
        final, failures = None, []
        try:
            for _ in range(1 + MAX_EVAL_RESENDS):  # an evaluation lost with its actor is sent again
                result = self._evaluation(self._evaluate().result())
                if result is not None:
                    final = self._record_eval(result)
                    break
            else:
                failures.append(f"evaluation: lost with the evaluator {1 + MAX_EVAL_RESENDS} times in a row")
        except Exception as exc:  # noqa: BLE001  the run's training is saved; say what failed
            failures.append(f"evaluation: {one_line(exc)}")
            self.incidents.report(
                "final_evaluation",
                f"the final evaluation failed ({one_line(exc)}); the trained model is saved",
                exc=exc,
            )
        if self.cfg.diagnostics and self.updates > 0:
            try:
                self.logger.log(
                    self.env_steps, self._diagnostics(str(self.run_dir / "diagnostics")).result(), kind="diag"
                )
            except Exception as exc:  # noqa: BLE001
                failures.append(f"diagnostics: {one_line(exc)}")
                self.incidents.report(
                    "final_diagnostics",
                    f"the final diagnostics failed ({one_line(exc)}); the trained model is saved",
                    exc=exc,
                )
        distinct = len(
            set(self._learners_call(lambda: self.built_parts().learners.digests()))
        )  # data-parallel replicas must end identical
        if distinct > 1:
            failures.append(f"learner ranks hold {distinct} different sets of parameters: replicas diverged")
        state["evals"] = self.evals.state_dict()  # the final evaluation in the history; nothing else moves
        self.checkpoint.write(state)
        wall = time.time() - t0
        summary = {
            "env_steps": self.env_steps,
            "updates": self.updates,
            "episodes": sum(self.counters.episodes.values()),
            "tasks_with_episodes": len(self.counters.episodes),
            "last_eval_return": None if final is None else final["episode_return"],
            "normalized_score": None if final is None else final.get("normalized_score"),
            "runner_restarts": self.counters.runner_restarts,
            "wall_s": wall,
            "env_steps_per_s": (self.env_steps - steps0) / wall,
            "updates_per_s": (self.updates - updates0) / wall,
            "runner_overhead": _overhead(timing),
            "failures": failures,
            "weights_lag_p50": float(np.percentile(self.lags, 50)) if self.lags else None,
            "weights_lag_p99": float(np.percentile(self.lags, 99)) if self.lags else None,
        }
        damage = self._check_replay_damage()
        summary.update(
            {
                "shards_set_aside": {i["shard"]: i["reason"] for i in self.incidents.of("shard_set_aside")},
                "replay_quarantine": damage["quarantine"],
                "incidents": self.incidents.lines(),
                "incident_details": self.incidents.details(),
            }
        )
        if any("constraint_violations" in t for t in timing.values()):  # constrained runs: must be 0
            summary["constraint_violations"] = sum(t.get("constraint_violations", 0) for t in timing.values())
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        self.logger.log(self.env_steps, summary, kind="summary")
        plot_learning_curves(self.run_dir)
        return summary

    def _record_collect(self, stats: dict) -> None:
        if stats.get("unreachable"):  # the call's counts come with the runner's next reply
            self.incidents.report(
                "runner_unreachable",
                f"env runner {stats['slot']} was unreachable for a call "
                f"({stats['error']}); it goes on, and what that call collected is counted with "
                f"its next one",
                key=("unreachable", stats["slot"], self.env_steps),
                slot=stats["slot"],
            )
            return
        if stats.get("restarted"):
            self.counters.runner_restarts += 1
            lost = stats.get("lost_tasks", [])
            for task in lost:  # counted when reported, never committed: the counters follow the store
                self.counters.episodes[self.names[task]] -= 1
            self.incidents.report(
                "runner_restart",
                f"env runner {stats['slot']} died ({stats['error']}); Ray "
                f"restarted it with the current weights; episodes it had not handed to its shard "
                f"are lost"
                + (f", and {len(lost)} its shard had not committed (taken off the counters)" if lost else ""),
                key=self.counters.runner_restarts,
                slot=stats["slot"],
                episodes_lost=len(lost),
            )
            return
        self.counters.env_steps += stats["collected"]
        self.limiter.record_inserts(stats["collected"])
        for task, ret, succ, length, version in stats["episodes"]:
            self.counters.episodes[self.names[task]] += 1
            lag = self.updates - self.version_updates.get(version, self.updates)  # updates behind the learner
            self.lags.append(lag)
            self.logger.log(
                self.env_steps,
                {
                    "task": self.names[task],
                    "return": ret,
                    "success": succ,
                    "length": length,
                    "weights_version": version,
                    "weights_lag": lag,
                },
                kind="episode",
            )

    def _evaluation(self, result: dict) -> dict | None:
        """An evaluation job's result, or None if the evaluator lost it (its actor died); an `incident` the
        backend attached (what was lost, where, what was done) is reported once."""
        incident = result.pop("incident", None)
        if incident is not None:
            self.incidents.report(
                incident["kind"],
                incident["line"],
                key=incident["key"],
                exc=incident.get("exc"),
                **{k: v for k, v in incident.items() if k not in ("kind", "line", "key", "exc")},
            )
        return None if result.get("lost") else result

    def _evaluate(self) -> Job:
        return self.built_parts().evaluator.evaluate(
            self.built_parts().learners.publish(),
            self.counters.weights_version,
            tasks=self.tasks,
            episodes=self.cfg.eval_episodes,
            seed=self.cfg.seed + 17,
            max_steps=self.cfg.eval_max_steps,
        )

    def _diagnostics(self, out_dir: str | None = None) -> Job:
        return self.built_parts().learners.diagnostics(
            self.names,
            [t.obs_dim for t in self.task_set.tasks],
            per_task=self.cfg.diag_samples_per_task,
            audit_states=self.cfg.diag_audit_states,
            out_dir=out_dir,
        )

    def _record_eval(self, result: dict) -> dict:
        from distributed.evaluator import eval_row, write_eval_table

        recent, self._lag_mark = self.lags[self._lag_mark :], len(self.lags)  # episodes since the last evaluation
        lag = {f"weights_lag_{q}": float(np.percentile(recent, int(q[1:]))) if recent else None for q in ("p50", "p99")}
        row = eval_row(result, updates=self.updates, weights_version=result.get("weights_version"), **lag)
        self.logger.log(self.progress(), row, kind="eval")
        self.evals.append(
            {
                "step": self.progress(),
                "episode_return": row["episode_return"],
                "normalized_score": row["normalized_score"],
            }
        )
        self.last_eval = row
        self._check_replay_damage()
        write_eval_table(
            self.run_dir,
            result,
            {t.name: t.domain for t in self.task_set.tasks},
            self.progress(),
            notes=[
                f"weights lag of the episodes collected since the last evaluation, in updates: "
                f"p50 {lag['weights_lag_p50']}, p99 {lag['weights_lag_p99']}"
            ]
            + self.incidents.lines(),
        )
        return row

    def _check_replay_damage(self) -> dict:
        """Damaged replay data the learners met (layout.Quarantine, whole shards set aside), each reported
        once as an incident; returns it."""
        damage = self._learners_call(lambda: self.built_parts().learners.replay_damage())
        for path, why in damage["set_aside"].items():
            self.incidents.report(
                "shard_set_aside", f"replay shard {path} set aside whole: {why}", key=path, shard=path, reason=why
            )
        for q in damage["quarantine"]:
            self.incidents.report(
                "replay_quarantine",
                q["line"],
                key=(q["shard"], q["chunk"]),
                **{k: v for k, v in q.items() if k != "line"},
            )
        return damage

    def _learners_call(self, call):
        """`call()`, which asks the learners for something; once more after a rebuild if one of them died."""
        try:
            return call()
        except PartLost as lost:
            self._rebuild_learners(lost)
            return call()

    def save(self) -> dict:
        """Every reported episode committed first, so the saved counters match the store."""
        for incident in self.built_parts().collector.drain() or []:  # a shard restarted since the last drain
            for task, n in incident.get("counter_delta", {}).items():  # committed once, now lost: the counters
                self.counters.episodes[self.names[task]] += n  # follow the store
            if incident.get("kind"):
                self.incidents.report(
                    incident["kind"],
                    incident["line"],
                    key=incident["key"],
                    shard=incident["shard"],
                    episodes_lost=incident.get("episodes_lost", 0),
                )
        return self._learners_call(lambda: self._save())

    def _save(self) -> dict:
        return self.checkpoint.save(
            {
                "task_set": self.cfg.task,
                "tasks": self.names,
                "env_steps": self.env_steps,
                "updates": self.updates,
                "backend": self.cfg.backend,
            }
        )

    def fail(self, exc: BaseException) -> dict:
        """What the run died of, as one line on the console and in summary.json (with the incidents it
        survived before), the traceback in errors.log; what was stored stays as it is."""
        from distributed.incidents import ERRORS_LOG, one_line

        line = f"the job failed: {one_line(exc)} (traceback: {self.run_dir / ERRORS_LOG})"
        self.incidents.report("fatal", line, exc=exc)
        summary = {
            "failed": line,
            "env_steps": self.env_steps,
            "updates": self.updates,
            "episodes": sum(self.counters.episodes.values()),
            "incidents": self.incidents.lines(),
            "incident_details": self.incidents.details(),
        }
        if not is_remote(self.run_dir):
            self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        return summary

    def shutdown(self) -> None:
        if self.parts is not None:
            try:
                self.parts.close()
            finally:
                self.logger.close()
                self.parts = None


def check_offline_data(data: str, task_set) -> None:
    """The store named by `data` fits the task set: dims no wider, task ids inside the set and, if
    the store records its task names, the same names at the same ids."""
    from distributed.batches import shard_paths
    from distributed.replay.layout import read_state

    try:
        paths = shard_paths(data)
        states = [read_state(p) for p in paths]
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"offline_data={data!r}: {exc}") from None
    dims = {(info.obs_dim, info.action_dim) for info, _ in states}
    if len(dims) > 1:
        raise ConfigError(f"offline_data={data!r}: shards disagree on (obs_dim, action_dim): {sorted(dims)}")
    [(obs_dim, action_dim)] = dims
    ids = {int(t) for _, commit in states for t, v in commit.live_per_task.items() if v[0]}  # tasks with live episodes
    names = list(task_set.names)
    for path, stored in zip(paths, (info.tasks for info, _ in states), strict=False):
        if stored is None:
            print(
                f"note: {path} records no task names; its task ids are taken as positions in {task_set.name!r} "
                f"(import with task_set=<name> to have them checked)"
            )
            continue
        wrong = [
            (i, stored[i], names[i] if i < len(names) else None)
            for i in sorted(ids)
            if i < len(stored) and (i >= len(names) or stored[i] != names[i])
        ]
        if wrong:
            raise ConfigError(
                f"offline_data {str(path)!r} holds other tasks at these ids than task set "
                f"{task_set.name!r}: "
                + ", ".join(f"id {i}: {a!r} there, {b!r} here" for i, a, b in wrong[:5])
                + "; train with the task set the store was made for"
            )
    if obs_dim > task_set.max_obs_dim or action_dim > task_set.max_action_dim:
        raise ConfigError(
            f"offline_data {data!r} holds obs/action dims {(obs_dim, action_dim)}, wider than task set "
            f"{task_set.name!r} ({task_set.max_obs_dim}, {task_set.max_action_dim}): it belongs to "
            f"another task set"
        )
    bad = sorted(t for t in ids if t >= len(task_set.tasks))
    if bad:
        raise ConfigError(
            f"offline_data {data!r} holds task ids {bad}; task set {task_set.name!r} has {len(task_set.tasks)} tasks"
        )


def _overhead(timing: dict) -> float | None:
    """Runners' wall time inside collect calls over their simulation + planning time."""
    work = sum(t.get("plan_s", 0.0) + t.get("sim_s", 0.0) for t in timing.values())
    return None if work == 0 else sum(t.get("call_s", 0.0) for t in timing.values()) / work


def run(cfg: RunConfig, **kw) -> dict:
    """Build the loop for `cfg`, train, shut down; returns the summary."""
    loop = Loop(cfg, **kw)
    try:
        return loop.run()
    finally:
        loop.shutdown()
