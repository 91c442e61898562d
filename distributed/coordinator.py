"""The driver of a distributed run: starts the actors, keeps the update-to-data ratio,
publishes weights, evaluates, checkpoints, logs, and restarts what dies.

    EnvRunner actors --episodes--> ReplayShard actors --batches--> Learner actors (DDP group)
           ^                                                              |
           +------------------ weights (object store, every K updates) ---+
"""
from __future__ import annotations

import csv
import importlib.util
import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

from agents.checkpoint import CHECKPOINT_FILE, load_checkpoint
from agents.config import make_agent_config
from embodiments.conditioning import descriptor_kwargs
from distributed.config import RunConfig
from distributed.evaluator import eval_row
from distributed.rate_limiter import RateLimiter
from distributed.run_log import RunLogger, plot_learning_curves

DOMAIN_PACKAGES = {"dmc": ("dm_control", "dm-control"), "metaworld": ("metaworld", "metaworld"),
                   "gym": ("mujoco", "gymnasium[mujoco]")}


class ConfigError(ValueError):
    """A run that cannot start as configured; raised before any actor starts."""


def assign_tasks(task_set, num_runners: int) -> list[list[str]]:
    """Split tasks over runners so each runner holds as few embodiment families as possible:
    runners go to domains in proportion to their task counts (at least one each when there are
    enough runners), and each domain's tasks, sorted by embodiment, are cut into contiguous runs."""
    if num_runners == 0:  # an offline run
        return []
    by_domain: dict[str, list] = {}
    for t in task_set.tasks:
        by_domain.setdefault(t.domain, []).append(t)
    domains = sorted(by_domain, key=lambda d: -len(by_domain[d]))
    if num_runners < len(domains):
        ordered = sorted(task_set.tasks, key=lambda t: (t.domain, t.embodiment, t.name))
        return [[t.name for t in part] for part in np.array_split(np.array(ordered, dtype=object), num_runners)]
    share = {d: 1 for d in domains}
    for _ in range(num_runners - len(domains)):  # give spare runners to the domain with most tasks per runner
        d = max(domains, key=lambda d: len(by_domain[d]) / share[d])
        share[d] += 1
    out = []
    for d in domains:
        ordered = sorted(by_domain[d], key=lambda t: (t.embodiment, t.name))
        for part in np.array_split(np.array(ordered, dtype=object), share[d]):
            out.append([t.name for t in part])
    return [p for p in out if p]


def check_tasks_buildable(task_set) -> None:
    missing = {}
    for t in task_set.tasks:
        module, pip_name = DOMAIN_PACKAGES.get(t.domain, (None, None))
        if module and importlib.util.find_spec(module) is None:
            missing.setdefault(pip_name, []).append(t.name)
    if missing:
        lines = "; ".join(f"{len(v)} tasks need `pip install {k}` (e.g. {v[0]})" for k, v in missing.items())
        raise ConfigError(f"task set {task_set.name!r} has tasks this machine cannot build: {lines}")


def resource_needs(cfg: RunConfig, offline_shards: int = 0) -> dict[str, float]:
    return {"CPU": cfg.num_runners * cfg.cpus_per_runner + cfg.num_learners * cfg.cpus_per_learner
            + (cfg.shards + offline_shards) * cfg.cpus_per_shard + cfg.cpus_per_evaluator,
            "GPU": cfg.num_runners * cfg.gpus_per_runner + cfg.num_learners * cfg.gpus_per_learner}


def check_resources(cfg: RunConfig, available: dict[str, float], offline_shards: int = 0) -> None:
    need = resource_needs(cfg, offline_shards)
    short = {k: (v, available.get(k, 0.0)) for k, v in need.items() if v > available.get(k, 0.0) + 1e-9}
    if short:
        lines = ", ".join(f"{k}: needs {a:g}, cluster has {b:g}" for k, (a, b) in short.items())
        raise ConfigError(f"resources cannot be satisfied ({lines}); lower num_runners/num_learners or the "
                          f"cpus_/gpus_per_* settings, or add nodes")


def offline_shard_paths(cfg: RunConfig, task_set) -> list:
    """The shards of `cfg.offline_data`, checked against the task set's padded dims."""
    if not cfg.offline_data:
        if cfg.num_runners == 0:
            raise ConfigError("num_runners=0 means an offline run: give offline_data=<replay store>")
        return []
    from distributed.offline.train import shard_paths, store_dims

    try:
        paths = shard_paths(cfg.offline_data)
        dims = store_dims(paths)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"offline_data={cfg.offline_data!r}: {exc}") from None
    want = (task_set.max_obs_dim, task_set.max_action_dim)
    if dims != want:
        raise ConfigError(f"offline_data {cfg.offline_data!r} holds obs/action dims {dims}, task set "
                          f"{task_set.name!r} pads to {want}; import it with --obs-dim {want[0]} --action-dim {want[1]}")
    return paths


def check_run_dir(cfg: RunConfig, tasks: list[str]) -> None:
    meta = Path(cfg.run_dir) / "run.json"
    if not meta.exists():
        return
    saved = json.loads(meta.read_text())
    diffs = {k: (saved.get(k), v) for k, v in cfg.identity().items() if saved.get(k) != v}
    if saved.get("tasks") is not None and saved["tasks"] != tasks:
        diffs["tasks"] = ("...", "...")
    if diffs:
        raise ConfigError(f"run directory {cfg.run_dir} belongs to a run with another config "
                          f"({ {k: f'{a!r} there, {b!r} here' for k, (a, b) in diffs.items()} }); "
                          f"use another run_dir or the original settings")


class Coordinator:
    def __init__(self, cfg: RunConfig):
        from envs import load_task_set

        self.cfg = cfg
        self.task_set = load_task_set(cfg.task_set)
        check_tasks_buildable(self.task_set)
        self.names = list(self.task_set.names)
        check_run_dir(cfg, self.names)
        self.offline_paths = offline_shard_paths(cfg, self.task_set)
        self.offline_only = cfg.num_runners == 0
        episode_lengths = [t.episode_length for t in self.task_set.tasks]
        common = dict(obs_dim=self.task_set.max_obs_dim, action_dim=self.task_set.max_action_dim,
                      episode_lengths=episode_lengths, model_size=cfg.model_size, model=cfg.model,
                      optim={"batch_size": cfg.batch_size, **cfg.optim}, planner=cfg.planner,
                      precision=cfg.precision, **descriptor_kwargs(cfg.model, self.task_set),
                      can_terminate=self.task_set.can_terminate())
        self.learner_cfg = make_agent_config(device=cfg.device, **common)
        self.runner_cfg = make_agent_config(device=cfg.runner_device, **common)
        seed_steps = cfg.seed_steps if cfg.seed_steps is not None else max(1000, 5 * max(
            min(L, cfg.max_episode_steps or L) for L in episode_lengths))
        self.seed_steps = seed_steps
        self.limiter = RateLimiter(cfg.utd, min_inserts=seed_steps, max_lag=cfg.max_lag)
        self.assignment = assign_tasks(self.task_set, cfg.num_runners)
        self.run_dir = Path(cfg.run_dir)
        self.env_steps = 0
        self.episodes: Counter = Counter()
        self.weights_version = 0
        self.runner_restarts = 0
        self.shard_restarts = 0
        self.evals: list[dict] = []
        self.started = False

    # -- start-up -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Check resources, then create shards, runners, learners and the evaluator."""
        import ray

        from distributed.actors import actor_classes

        check_resources(self.cfg, ray.cluster_resources(), len(self.offline_paths))
        cfg, C = self.cfg, actor_classes()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        meta = self.run_dir / "run.json"
        if not meta.exists():
            meta.write_text(json.dumps({**cfg.identity(), "tasks": self.names}, indent=1))
        masks = self.task_set.action_masks()
        self.shards = [C["shard"].options(num_cpus=cfg.cpus_per_shard, max_restarts=-1, max_task_retries=-1).remote(
            str(self.run_dir / "replay" / f"shard-{i:03d}"), obs_dim=self.task_set.max_obs_dim,
            action_dim=self.task_set.max_action_dim, chunk_len=cfg.chunk_len, cache_bytes=cfg.shard_cache_mb << 20,
            flush_every_s=cfg.shard_flush_s, seed=cfg.seed * 31 + i) for i in range(cfg.shards)]
        self.offline_shards = [C["shard"].options(num_cpus=cfg.cpus_per_shard, max_restarts=-1,
                                                  max_task_retries=-1).remote(
            str(p), obs_dim=self.task_set.max_obs_dim, action_dim=self.task_set.max_action_dim,
            cache_bytes=cfg.shard_cache_mb << 20, seed=cfg.seed * 37 + i) for i, p in enumerate(self.offline_paths)]
        threads = lambda c: max(1, int(c))  # noqa: E731  torch threads = the actor's CPU share
        self.runners = [C["runner"].options(num_cpus=cfg.cpus_per_runner, num_gpus=cfg.gpus_per_runner,
                                            max_restarts=-1).remote(
            self.runner_cfg, cfg.task_set, tasks, self.shards[i % cfg.shards], envs_per_task=cfg.envs_per_task,
            seed=cfg.seed, runner_id=i, torch_threads=threads(cfg.cpus_per_runner),
            max_episode_steps=cfg.max_episode_steps) for i, tasks in enumerate(self.assignment)]
        self.learners = [C["learner"].options(num_cpus=cfg.cpus_per_learner, num_gpus=cfg.gpus_per_learner).remote(
            self.learner_cfg, masks, self.shards, rank=r, world_size=cfg.num_learners, seed=cfg.seed,
            torch_threads=threads(cfg.cpus_per_learner), offline_shards=self.offline_shards,
            offline_ratio=cfg.offline_ratio) for r in range(cfg.num_learners)]
        if cfg.num_learners > 1:
            addr = ray.get(self.learners[0].address.remote())
            ray.get([lr.init_process_group.remote(f"tcp://{addr}") for lr in self.learners])
        self.evaluator = C["evaluator"].options(num_cpus=cfg.cpus_per_evaluator).remote(
            self.runner_cfg, cfg.task_set, threads(cfg.cpus_per_evaluator))
        self.logger = RunLogger(self.run_dir, asdict(cfg), wandb_mode=cfg.wandb_mode, project=cfg.wandb_project,
                                group=cfg.task_set)
        self._resume()
        self._publish()
        self.started = True

    def _resume(self) -> None:
        import ray

        if not (self.run_dir / CHECKPOINT_FILE).exists():
            return
        state = load_checkpoint(self.run_dir)
        ray.get([lr.load_agent_state.remote(state["agent"]) for lr in self.learners])
        extra = state["extra"]
        if len(extra.get("learner_rng", [])) == len(self.learners):
            ray.get([lr.load_rng_state.remote(s) for lr, s in zip(self.learners, extra["learner_rng"])])
        self.env_steps = int(extra["env_steps"])
        self.limiter.load_state_dict(extra["limiter"])
        self.episodes = Counter({k: int(v) for k, v in extra["episodes"].items()})
        self.weights_version = int(extra["weights_version"])
        self.evals = json.loads(extra.get("evals", "[]"))
        print(f"resumed {self.run_dir}: env step {self.env_steps}, update {self.limiter.samples}, "
              f"{sum(self.episodes.values())} episodes")

    # -- the loop -----------------------------------------------------------------------------------
    def _publish(self) -> None:
        """Rank 0's weights into the object store once; every runner loads that one copy."""
        self.weights_version += 1
        self.weights_ref = self.learners[0].weights.remote()
        for r in self.runners:
            r.set_weights.remote(self.weights_ref, self.weights_version)

    def progress(self) -> int:
        """What `steps`, `eval_freq` and `checkpoint_freq` count: env steps, or updates offline."""
        return self.limiter.samples if self.offline_only else self.env_steps

    def run(self) -> dict:
        import ray
        from ray.exceptions import RayActorError

        if not self.started:
            self.start()
        cfg = self.cfg
        collecting: dict = {}
        learning: list | None = None
        learned: set = set()  # refs of the current learning round that have finished
        round_size = 0
        evaluating = None
        diagnosing = None
        next_diag = (self.progress() // cfg.diag_freq + 1) * cfg.diag_freq if cfg.diag_freq else None
        last_publish = self.limiter.samples
        next_eval = (self.progress() // cfg.eval_freq + 1) * cfg.eval_freq
        next_ckpt = (self.progress() // cfg.checkpoint_freq + 1) * cfg.checkpoint_freq
        bar = _progress(cfg.steps, self.progress(), cfg.progress)
        t0, steps0, updates0 = time.time(), self.env_steps, self.limiter.samples
        timing = {}
        while self.progress() < cfg.steps or collecting or learning is not None:
            # collection, held back while learners lag (never before there is anything to learn from)
            no_data = sum(self.episodes.values()) == 0
            if self.progress() < cfg.steps and (self.limiter.can_insert() or no_data):
                for i, r in enumerate(self.runners):
                    if i not in collecting.values():
                        seeding = self.env_steps < self.seed_steps
                        collecting[r.collect.remote(cfg.collect_steps, seeding)] = i
            # learning, as far as the ratio allows
            if learning is None:
                if self.offline_only:
                    n = min(cfg.updates_per_round, cfg.steps - self.limiter.samples)
                else:
                    n = min(self.limiter.allowed_samples(), cfg.updates_per_round)
                if n > 0 and (self.offline_only or sum(self.episodes.values()) > 0):
                    learning, round_size = [lr.train.remote(n) for lr in self.learners], n
                    learned = set()
            waiting = (list(collecting) + [r for r in learning or [] if r not in learned]
                       + ([evaluating] if evaluating else [])
                       + ([diagnosing] if diagnosing else []))
            if not waiting:
                continue
            ready, _ = ray.wait(waiting, num_returns=1, timeout=1.0)
            for ref in ready:
                if ref in collecting:
                    i = collecting.pop(ref)
                    try:
                        stats = ray.get(ref)
                    except RayActorError:
                        self.runner_restarts += 1  # Ray restarts the actor; give it the current weights
                        self.runners[i].set_weights.remote(self.weights_ref, self.weights_version)
                        continue
                    self.env_steps += stats["steps_this_call"]
                    self.limiter.record_inserts(stats["steps_this_call"])
                    timing[i] = stats
                    for task, ret, succ, length in stats["episodes"]:
                        self.episodes[self.names[task]] += 1
                        self.logger.log(self.env_steps, {"task": self.names[task], "return": ret, "success": succ,
                                                         "length": length}, kind="episode")
                elif learning is not None and ref in learning:
                    learned.add(ref)
                    if len(learned) == len(learning):  # every rank finished the round
                        infos = ray.get(learning)
                        learning = None
                        self.limiter.record_samples(round_size)
                        if self.limiter.samples - last_publish >= cfg.publish_every:
                            self._publish()
                            last_publish = self.limiter.samples
                        self.logger.log(self.env_steps, {**infos[0], "updates": self.limiter.samples}, kind="train")
                elif ref is evaluating:
                    self._record_eval(ray.get(ref))
                    evaluating = None
                elif ref is diagnosing:
                    self.logger.log(self.env_steps, ray.get(ref), kind="diag")
                    diagnosing = None
            if next_diag is not None and self.progress() >= next_diag and diagnosing is None \
                    and self.limiter.samples > 0 and self.progress() < cfg.steps:
                diagnosing = self._start_diagnostics()
                next_diag += cfg.diag_freq
            if self.progress() >= next_eval and evaluating is None and self.progress() < cfg.steps:
                evaluating = self._start_eval()
                next_eval += cfg.eval_freq
            if self.progress() >= next_ckpt:
                self.checkpoint()
                next_ckpt += cfg.checkpoint_freq
            if bar is not None:
                el = max(time.time() - t0, 1e-9)
                last = self.evals[-1]["normalized_score"] if self.evals else None
                bar.set_postfix(sps=f"{(self.env_steps - steps0) / el:.0f}",
                                ups=f"{(self.limiter.samples - updates0) / el:.1f}",
                                replay=self.limiter.inserts, eps=sum(self.episodes.values()),
                                score="-" if last is None else f"{last:.1f}", refresh=False)
                bar.n = min(self.progress(), cfg.steps)
                bar.refresh()
        if evaluating is not None:
            self._record_eval(ray.get(evaluating))
        if diagnosing is not None:
            self.logger.log(self.env_steps, ray.get(diagnosing), kind="diag")
        if self.limiter.samples > 0:  # the full report of the final model
            self.logger.log(self.env_steps, ray.get(self._start_diagnostics(str(self.run_dir / "diagnostics"))),
                            kind="diag")
        self._publish()
        final = self._record_eval(ray.get(self._start_eval()))
        self.checkpoint()
        if bar is not None:
            bar.close()
        wall = time.time() - t0
        summary = {"env_steps": self.env_steps, "updates": self.limiter.samples, "episodes": sum(self.episodes.values()),
                   "tasks_with_episodes": len(self.episodes), "normalized_score": final["normalized_score"],
                   "runner_restarts": self.runner_restarts, "wall_s": wall,
                   "env_steps_per_s": (self.env_steps - steps0) / wall,
                   "updates_per_s": (self.limiter.samples - updates0) / wall,
                   "runner_overhead": _overhead(timing)}
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        self.logger.log(self.env_steps, summary, kind="summary")
        plot_learning_curves(self.run_dir)
        return summary

    def _start_diagnostics(self, out_dir: str | None = None):
        return self.learners[0].diagnostics.remote(
            self.names, [t.obs_dim for t in self.task_set.tasks], per_task=self.cfg.diag_samples_per_task,
            audit_states=self.cfg.diag_audit_states, out_dir=out_dir)

    def _start_eval(self):
        return self.evaluator.evaluate.remote(self.weights_ref, self.weights_version, episodes=self.cfg.eval_episodes,
                                              seed=self.cfg.seed + 17, max_steps=self.cfg.eval_max_steps)

    def _record_eval(self, result: dict) -> dict:
        row = {"normalized_score": result["normalized_score"],
               **eval_row(result, updates=self.limiter.samples)}  # null score kept: sweeps read every row
        self.logger.log(self.env_steps, row, kind="eval")
        self.evals.append({"env_steps": self.env_steps, "normalized_score": result["normalized_score"]})
        write_eval_table(self.run_dir, result, {t.name: t.domain for t in self.task_set.tasks}, self.env_steps)
        return result

    def checkpoint(self) -> None:
        """Flush every shard, then save rank 0's agent with the counters that match the store."""
        import ray

        from agents.checkpoint import save_checkpoint

        from ray.exceptions import RayActorError

        for ref in [r.drain.remote() for r in self.runners]:  # reported episodes are in their shards ...
            try:
                ray.get(ref)
            except RayActorError:  # a runner being restarted: what it had not handed over is gone
                pass
        ray.get([s.flush.remote() for s in self.shards])  # ... and committed before the counters are saved
        state = ray.get(self.learners[0].agent_state.remote())
        rngs = ray.get([lr.rng_state.remote() for lr in self.learners])
        extra = {"env_steps": self.env_steps, "learner_rng": rngs, "limiter": self.limiter.state_dict(),
                 "episodes": dict(self.episodes),
                 "weights_version": self.weights_version, "task_set": self.cfg.task_set, "tasks": self.names,
                 "evals": json.dumps(self.evals)}
        _save_agent_state(self.run_dir, state, extra)

    def shutdown(self) -> None:
        import ray

        if self.started:
            try:
                ray.get([s.close.remote() for s in self.shards + self.offline_shards], timeout=60)
            finally:
                for a in self.runners + self.learners + [self.evaluator] + self.shards + self.offline_shards:
                    ray.kill(a)
            self.logger.close()
            self.started = False


def _save_agent_state(run_dir: Path, state: dict, extra: dict) -> None:
    import os

    import torch

    tmp = run_dir / (CHECKPOINT_FILE + ".tmp")
    torch.save({"agent": state, "extra": extra}, tmp)
    os.replace(tmp, run_dir / CHECKPOINT_FILE)


def write_eval_table(run_dir: Path, result: dict, domains: dict, env_steps: int, policy: str = "planner") -> None:
    """Per-task evaluation as eval.md and eval.csv, plus a bar chart eval_tasks.png (`policy`
    names what acted, for the latency line)."""
    rows = [(k, domains[k], v["return"], v["success"], v["episodes"]) for k, v in result["tasks"].items()]
    with open(run_dir / "eval.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task", "domain", "return", "success", "episodes"])
        w.writerows(rows)
    lines = [f"# Evaluation at {env_steps} env steps", "",
             f"normalized score: {result['normalized_score']}", "",
             f"{policy} latency per step (all tasks batched): p50 {result['latency_ms']['p50']:.1f} ms, "
             f"p99 {result['latency_ms']['p99']:.1f} ms", "",
             "| task | domain | return | success | episodes |", "|---|---|---:|---:|---:|"]
    lines += [f"| {t} | {d} | {r:.1f} | {s:.2f} | {n} |" for t, d, r, s, n in rows]
    (run_dir / "eval.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.18 * len(rows)), 4))
    scores = [r / 10 if d == "dmc" else s * 100 if d == "metaworld" else r for _, d, r, s, _ in rows]
    ax.bar(range(len(rows)), scores, color=["C0" if d == "dmc" else "C1" for _, d, *_ in rows])
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([t for t, *_ in rows], rotation=90, fontsize=6)
    ax.set_ylabel("normalized score (dmc: return/10, mw: success %)")
    fig.tight_layout()
    fig.savefig(run_dir / "eval_tasks.png", dpi=90)
    plt.close(fig)


def _overhead(timing: dict) -> float | None:
    """Runners' wall time inside collect calls (stepping, planning, bookkeeping, shipping episodes
    to the shard) over their simulation + planning time."""
    work = sum(t["plan_s"] + t["sim_s"] for t in timing.values())
    return None if work == 0 else sum(t["call_s"] for t in timing.values()) / work


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, mininterval=2.0)
