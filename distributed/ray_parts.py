"""The loop's parts as Ray actors: env-runner actors that plan with published weights and ship
episodes to replay-shard actors, a data-parallel learner group, and an evaluator actor. Calls
return Jobs over object refs, so the loop overlaps collection, learning and evaluation.

    EnvRunner actors --episodes--> ReplayShard actors --batches--> Learner actors (DDP group)
           ^                                                              |
           +------------------ weights (object store, every K updates) ---+
"""
from __future__ import annotations

import contextlib
import importlib.util
import uuid

import numpy as np
import ray
from ray.exceptions import RayActorError

from distributed.config import ConfigError, RunConfig, build_agent_config
from distributed.incidents import one_line
from distributed.parts import Evaluators, Job, Learners, Parts, usable_shards

DOMAIN_PACKAGES = {"dmc": ("dm_control", "dm-control"), "metaworld": ("metaworld", "metaworld"),
                   "gym": ("mujoco", "gymnasium[mujoco]")}


def assign_tasks(task_set, num_runners: int) -> list[list[str]]:
    """Split tasks over runners so each runner holds as few embodiment families as possible:
    runners go to domains in proportion to their task counts (at least one each when there are
    enough runners), and each domain's tasks, sorted by embodiment, are cut into contiguous runs."""
    def split(tasks, n: int) -> list[list[str]]:  # sorted by (domain,) embodiment, cut into n contiguous runs
        ordered = sorted(tasks, key=lambda t: (t.domain, t.embodiment, t.name))
        return [[t.name for t in part] for part in np.array_split(np.array(ordered, dtype=object), n) if len(part)]

    if num_runners == 0:  # an offline run
        return []
    by_domain: dict[str, list] = {}
    for t in task_set.tasks:
        by_domain.setdefault(t.domain, []).append(t)
    domains = sorted(by_domain, key=lambda d: -len(by_domain[d]))
    if num_runners < len(domains):
        return split(task_set.tasks, num_runners)
    share = {d: 1 for d in domains}
    for _ in range(num_runners - len(domains)):  # give spare runners to the domain with most tasks per runner
        d = max(domains, key=lambda d: len(by_domain[d]) / share[d])
        share[d] += 1
    return [part for d in domains for part in split(by_domain[d], share[d])]


def check(cfg: RunConfig, task_set) -> None:
    """What a Ray run needs before anything starts: every task buildable on this machine (the runners'
    nodes run the same environment). Resources are checked against the cluster once Ray is up (`build`)."""
    check_tasks_buildable(task_set)


def check_tasks_buildable(task_set) -> None:
    missing = {}
    for t in task_set.tasks:
        module, pip_name = DOMAIN_PACKAGES.get(t.domain, (None, None))
        if module and importlib.util.find_spec(module) is None:
            missing.setdefault(pip_name, []).append(t.name)
    if missing:
        lines = "; ".join(f"{len(v)} tasks need `pip install {k}` (e.g. {v[0]})" for k, v in missing.items())
        raise ConfigError(f"task set {task_set.name!r} has tasks this machine cannot build: {lines}")


def resource_needs(cfg: RunConfig) -> dict[str, float]:
    return {"CPU": cfg.num_runners * cfg.cpus_per_runner + cfg.num_learners * cfg.cpus_per_learner
            + cfg.shards * cfg.cpus_per_shard + cfg.cpus_per_evaluator,
            "GPU": cfg.num_runners * cfg.gpus_per_runner + cfg.num_learners * cfg.gpus_per_learner}


def check_resources(cfg: RunConfig, available: dict[str, float]) -> None:
    need = resource_needs(cfg)
    short = {k: (v, available.get(k, 0.0)) for k, v in need.items() if v > available.get(k, 0.0) + 1e-9}
    if short:
        lines = ", ".join(f"{k}: needs {a:g}, cluster has {b:g}" for k, (a, b) in short.items())
        raise ConfigError(f"resources cannot be satisfied ({lines}); lower num_runners/num_learners or the "
                          f"cpus_/gpus_per_* settings, or add nodes")


def check_cluster_storage(cfg: RunConfig, nodes: int) -> None:
    """On a cluster of more than one node every node must reach the run's storage: shard actors,
    the driver and a restarted actor may be on any of them. A URI is reachable (its bucket was
    probed already); a file-system path only if the user says it is shared (NFS, Lustre, ...)."""
    from distributed.storage import is_remote

    if nodes > 1 and not is_remote(cfg.run_dir) and not cfg.storage_shared:
        raise ConfigError(f"run_dir={cfg.run_dir} is a path on this node's disk, but the Ray cluster has {nodes} "
                          f"nodes whose actors write there too; use run_dir=s3://<bucket>/<prefix>, or a path on a "
                          f"file system every node mounts and say so with storage_shared=true")


def _threads(cpus: float) -> int:
    return max(1, int(cpus))  # torch threads = the actor's CPU share


class RayCollector:
    def __init__(self, runners: list, shards: list):
        self.runners, self.shards = runners, shards
        self.slots = len(runners)
        self.weights = None

    def collect(self, slot: int, num_steps: int, seeding: bool, random_tasks=()) -> Job:
        def restarted(exc):  # Ray restarts the actor; give it the current weights
            self.runners[slot].set_weights.remote(*self.weights)
            return {"restarted": True, "slot": slot, "error": one_line(exc)}

        return Job(refs=[self.runners[slot].collect.remote(num_steps, seeding, list(random_tasks))],
                   finish=lambda v: v[0], on_error=restarted)

    def set_weights(self, weights_ref, version: int) -> None:
        self.weights = (weights_ref, version)
        for r in self.runners:
            r.set_weights.remote(weights_ref, version)

    def drain(self) -> None:
        """Episodes the runners reported are in their shards, and committed."""
        for ref in [r.drain.remote() for r in self.runners]:
            try:
                ray.get(ref)
            except RayActorError:  # a runner being restarted: what it had not handed over is gone
                pass
        ray.get([s.flush.remote() for s in self.shards])

    def close(self) -> None:
        ray.get([s.close.remote() for s in self.shards], timeout=60)


def build(loop) -> Parts:
    """Start the actors of `loop` (a distributed.loop.Loop) on the connected Ray cluster."""
    from distributed.actors import actor_classes

    cfg, ts = loop.cfg, loop.task_set
    check_resources(cfg, ray.cluster_resources())
    check_cluster_storage(cfg, sum(1 for n in ray.nodes() if n.get("Alive")))
    C = actor_classes()
    runner_cfg = build_agent_config(cfg, ts, device=cfg.runner_device or cfg.device)
    masks = ts.action_masks().astype(np.float32)
    # runners find their shard by name: a restartable actor must not take an actor handle as a
    # constructor argument (Ray keeps such arguments in the object store, and a restart fails once they are gone)
    token = uuid.uuid4().hex[:8]
    usable = usable_shards(loop, cfg.shards)
    shard_names = [f"latentfleet-{token}-shard-{i:03d}" for i in usable]
    shards = [C["shard"].options(name=name, num_cpus=cfg.cpus_per_shard, max_restarts=-1, max_task_retries=-1).remote(
        str(loop.run_dir / "replay" / f"shard-{i:03d}"), obs_dim=ts.max_obs_dim, action_dim=ts.max_action_dim,
        chunk_len=cfg.chunk_len, cache_bytes=cfg.shard_cache_mb << 20, flush_every_s=cfg.shard_flush_s,
        seed=cfg.seed * 31 + i, task_names=list(ts.names)) for i, name in zip(usable, shard_names)]
    runners = [C["runner"].options(num_cpus=cfg.cpus_per_runner, num_gpus=cfg.gpus_per_runner, max_restarts=-1).remote(
        runner_cfg, cfg.task, tasks, shard_names[i % len(shards)], envs_per_task=cfg.envs_per_task, seed=cfg.seed,
        runner_id=i, torch_threads=_threads(cfg.cpus_per_runner), max_episode_steps=cfg.max_episode_steps,
        piece_horizon=cfg.planner.horizon if cfg.partial_episodes else None)
        for i, tasks in enumerate(assign_tasks(ts, cfg.num_runners))]

    def start_learners() -> list:
        group = [C["learner"].options(num_cpus=cfg.cpus_per_learner, num_gpus=cfg.gpus_per_learner).remote(
            loop.agent_cfg, masks, shards, batch_size=cfg.batch_size, rank=r, world_size=cfg.num_learners,
            seed=cfg.seed, torch_threads=_threads(cfg.cpus_per_learner), balance=cfg.balance,
            offline_data=str(cfg.offline_data) if cfg.offline_data else None, offline_ratio=cfg.offline_ratio,
            cache_bytes=cfg.shard_cache_mb << 20) for r in range(cfg.num_learners)]
        if cfg.num_learners > 1:
            addr = ray.get(group[0].address.remote())
            ray.get([lr.init_process_group.remote(f"tcp://{addr}") for lr in group])
        return group

    # the evaluator holds nothing but a policy it is handed weights for: Ray restarts it wherever there is room
    evaluator = C["evaluator"].options(num_cpus=cfg.cpus_per_evaluator, max_restarts=-1).remote(
        runner_cfg, cfg.task, _threads(cfg.cpus_per_evaluator))
    collector = RayCollector(runners, shards)
    actors = {"runners": runners, "shards": shards, "learners": start_learners(), "evaluator": [evaluator]}

    def rebuild_learners() -> Learners:
        """A new group in place of one that lost a member: the survivors would wait for it at every
        all-reduce, so every rank goes; the new ranks start fresh (the loop loads its newest state)."""
        for a in actors["learners"]:
            with contextlib.suppress(Exception):
                ray.kill(a)
        actors["learners"] = start_learners()
        return Learners(actors["learners"], remote=True)

    def close() -> None:
        try:
            collector.close()
        finally:
            for a in [a for role in actors.values() for a in role]:
                with contextlib.suppress(Exception):
                    ray.kill(a)

    return Parts(collector=collector, learners=Learners(actors["learners"], remote=True),
                 evaluator=Evaluators([evaluator], remote=True), publish_every=cfg.publish_every, close=close,
                 actors=actors, rebuild_learners=rebuild_learners)
