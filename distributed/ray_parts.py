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
import json
import uuid
from collections import Counter
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.actor import ActorHandle
from ray.exceptions import GetTimeoutError, RayActorError
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from distributed.config import ConfigError, RunConfig, build_agent_config
from distributed.incidents import one_line
from distributed.parts import Evaluators, Job, Learners, Parts, ray_value, usable_shards
from distributed.storage import StoragePath

# How long start-up waits for the cluster to find room for the actors: autoscaled nodes take minutes to join
PLACEMENT_TIMEOUT_S = 600.0
# Where each kind of actor goes, and why (README "On a cluster"): runners and shards SPREAD over the nodes, so a
# lost node takes only its share of collection and storage; the evaluator SPREAD too, apart from the learners when
# there is room; the learner ranks in one placement group packed onto as few nodes as possible, for the all-reduce
STRATEGIES = {"runner": "SPREAD", "shard": "SPREAD", "evaluator": "SPREAD", "learner": "PACK placement group"}
PLACEMENT_FILE = "placement.json"

DOMAIN_PACKAGES = {
    "dmc": ("dm_control", "dm-control"),
    "metaworld": ("metaworld", "metaworld"),
    "gym": ("mujoco", "gymnasium[mujoco]"),
}


def assign_tasks(task_set, num_runners: int, only: list[str] | None = None) -> list[list[str]]:
    """Split tasks (the set's, or those of them named in `only`) over runners so each runner holds as few
    embodiment families as possible: runners go to domains in proportion to their task counts (at least one
    each when there are enough runners), and each domain's tasks, sorted by embodiment, are cut into
    contiguous runs."""

    def split(tasks, n: int) -> list[list[str]]:  # sorted by (domain,) embodiment, cut into n contiguous runs
        ordered = sorted(tasks, key=lambda t: (t.domain, t.embodiment, t.name))
        return [[t.name for t in part] for part in np.array_split(np.array(ordered, dtype=object), n) if len(part)]

    if num_runners == 0:  # an offline run
        return []
    chosen = [t for t in task_set.tasks if only is None or t.name in only]
    by_domain: dict[str, list] = {}
    for t in chosen:
        by_domain.setdefault(t.domain, []).append(t)
    domains = sorted(by_domain, key=lambda d: -len(by_domain[d]))
    if num_runners < len(domains):
        return split(chosen, num_runners)
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
    return {
        "CPU": cfg.num_runners * cfg.cpus_per_runner
        + cfg.num_learners * cfg.cpus_per_learner
        + cfg.shards * cfg.cpus_per_shard
        + cfg.cpus_per_evaluator,
        "GPU": cfg.num_runners * cfg.gpus_per_runner + cfg.num_learners * cfg.gpus_per_learner,
        **cfg.resources_per_evaluator,
    }


def check_resources(cfg: RunConfig, available: Mapping[str, float]) -> None:
    need = resource_needs(cfg)
    short = {k: (v, available.get(k, 0.0)) for k, v in need.items() if v > available.get(k, 0.0) + 1e-9}
    if short:
        lines = ", ".join(f"{k}: needs {a:g}, cluster has {b:g}" for k, (a, b) in short.items())
        raise ConfigError(
            f"resources cannot be satisfied ({lines}); lower num_runners/num_learners or the "
            f"cpus_/gpus_per_* settings, or add nodes"
        )


def learner_group_placement(cfg: RunConfig, token: str):
    """A placement group of one bundle per learner rank, packed (NCCL's all-reduce is fastest within a node),
    ready before any rank starts; a group the cluster cannot place is a one-line error."""
    from ray.exceptions import GetTimeoutError
    from ray.util.placement_group import placement_group, remove_placement_group

    bundle = {k: v for k, v in {"CPU": cfg.cpus_per_learner, "GPU": cfg.gpus_per_learner}.items() if v > 0}
    if not bundle:  # a rank that asks for nothing needs no reservation
        return None
    pg = placement_group([bundle] * cfg.num_learners, strategy="PACK", name=f"latentfleet-{token}-learners")
    try:
        ray.get(pg.ready(), timeout=PLACEMENT_TIMEOUT_S)
    except GetTimeoutError:
        remove_placement_group(pg)
        raise ConfigError(
            f"the learner group ({cfg.num_learners} ranks of {bundle}) found no room on the cluster in "
            f"{PLACEMENT_TIMEOUT_S:g} s; lower num_learners or cpus_/gpus_per_learner, or add nodes"
        ) from None
    return pg


def _node_id(_actor) -> str:
    """Run inside an actor (`__ray_call__`): the id of the node it lives on."""
    return ray.get_runtime_context().get_node_id()


def actor_placement(actors: dict[str, ActorHandle], timeout_s: float = PLACEMENT_TIMEOUT_S) -> dict:
    """Which node each actor (name -> handle) runs on, once all have started:
    {"nodes": [{"node_id", "name", "ip", "actors"}], "actors": {name: node_id}, "strategies": STRATEGIES}.
    Actors the cluster could not start in `timeout_s` are a one-line error naming them."""
    refs = {name: a.__ray_call__.remote(_node_id) for name, a in actors.items()}
    ready, pending = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
    if pending:
        waiting = [name for name, r in refs.items() if r in pending]
        raise ConfigError(
            f"{len(waiting)} actors found no room on the cluster in {timeout_s:g} s ({', '.join(waiting[:6])}"
            f"{', ...' if len(waiting) > 6 else ''}); free resources or add nodes"
        )
    where = dict(zip(refs, ray.get(list(refs.values())), strict=False))
    info = {n["NodeID"]: n for n in ray.nodes()}
    nodes = []
    for node_id in dict.fromkeys(where.values()):  # in order of first actor
        n = info.get(node_id, {})
        nodes.append(
            {
                "node_id": node_id,
                "name": n.get("NodeName", "?"),
                "ip": n.get("NodeManagerAddress", "?"),
                "actors": [a for a, i in where.items() if i == node_id],
            }
        )
    return {"nodes": nodes, "actors": where, "strategies": dict(STRATEGIES)}


def placement_lines(placement: dict) -> list[str]:
    """One line per node: short node id, name (when it is not the ip), ip, and its actors."""
    lines = [
        f"placement: {len(placement['actors'])} actors on {len(placement['nodes'])} node(s) (runners, shards, "
        f"evaluator spread; learner ranks packed)"
    ]
    for n in placement["nodes"]:
        name = f" {n['name']}" if n["name"] not in (n["ip"], "?") else ""
        lines.append(f"  node {n['node_id'][:8]}{name} {n['ip']}: {' '.join(n['actors'])}")
    return lines


def report_placement(run_dir: StoragePath, placement: dict) -> None:
    """Print the placement and record it in `<run_dir>/placement.json`."""
    print("\n".join(placement_lines(placement)), flush=True)
    write_placement(run_dir, placement)


def write_placement(run_dir: StoragePath, placement: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / PLACEMENT_FILE).write_text(json.dumps(placement, indent=1))


def node_label(node_id: str) -> str:
    """`node 1fa8ccd8 (w3, 127.0.0.1)`: short id, name (where it is not the IP) and IP (GCS still lists a dead node)."""
    info = next((n for n in ray.nodes() if n["NodeID"] == node_id), {})
    name, ip = info.get("NodeName", "?"), info.get("NodeManagerAddress", "?")
    return f"node {node_id[:8]} ({name}, {ip})" if name != ip else f"node {node_id[:8]} ({ip})"


def move_actor(placement: dict, actor: str, node_id: str) -> None:
    """Record in `placement` that `actor` now runs on `node_id` (restarted there)."""
    for n in placement["nodes"]:
        if actor in n["actors"]:
            n["actors"].remove(actor)
    placement["nodes"] = [n for n in placement["nodes"] if n["actors"]]
    entry = next((n for n in placement["nodes"] if n["node_id"] == node_id), None)
    if entry is None:
        info = next((n for n in ray.nodes() if n["NodeID"] == node_id), {})
        entry = {
            "node_id": node_id,
            "name": info.get("NodeName", "?"),
            "ip": info.get("NodeManagerAddress", "?"),
            "actors": [],
        }
        placement["nodes"].append(entry)
    entry["actors"].append(actor)
    placement["actors"][actor] = node_id


def check_cluster_storage(cfg: RunConfig, nodes: int) -> None:
    """On a cluster of more than one node every node must reach the run's storage: shard actors,
    the driver and a restarted actor may be on any of them. A URI is reachable (its bucket was
    probed already); a file-system path only if the user says it is shared (NFS, Lustre, ...)."""
    from distributed.storage import is_remote

    if nodes > 1 and not is_remote(cfg.run_dir) and not cfg.storage_shared:
        raise ConfigError(
            f"run_dir={cfg.run_dir} is a path on this node's disk, but the Ray cluster has {nodes} "
            f"nodes whose actors write there too; use run_dir=s3://<bucket>/<prefix>, or a path on a "
            f"file system every node mounts and say so with storage_shared=true"
        )


def _threads(cpus: float) -> int:
    return max(1, int(cpus))  # torch threads = the actor's CPU share


class RayCollector:
    """Env-runner actors, each writing to its replay shard (runner i to shard i mod shards).

    What the loop counts comes from the runners' reports, acknowledged call by call (EnvRunnerShell.collect):
    a call whose reply was lost is counted with the next one, none twice. The finished episodes a runner
    reports are counted at once, before its shard commits them; until a checkpoint's drain shows them
    committed they are kept here by (producer, sequence, task), so that a runner that died with its shard's
    uncommitted episodes (one lost node holding both) has the episodes that were lost taken off the counters
    again (`lost_tasks` of its restart result)."""

    def __init__(self, runners: list, shards: list):
        self.runners, self.shards = runners, shards
        self.slots = len(runners)
        self.weights: tuple[Any, int] | None = None  # (weights ref, version) of set_weights
        self.reported: dict[int, list[tuple[str, int, int]]] = {slot: [] for slot in range(self.slots)}
        self.acked: dict[int, tuple[str | None, int]] = {slot: (None, -1) for slot in range(self.slots)}
        # per shard: the whole episodes counted for it (task -> n), and its state at the last drain (a restarted
        # shard whose reopened store is older than that one lost committed data: see drain)
        self.credited: dict[int, Counter] = {i: Counter() for i in range(len(shards))}
        self.known: dict[int, dict] = {}
        # shards whose counts the driver cannot follow call by call (restarted without their data; a runner of theirs
        # died, maybe after its shard committed what the driver never heard of): set to what they hold at the
        # next drain every runner of theirs took part in
        self.reconcile: set[int] = set()
        self.in_flight: Counter = Counter()  # collect calls per slot whose reply the loop has not taken yet
        self.placement: dict | None = None  # where the actors run (placement.json in run_dir), kept up to date
        self.run_dir: StoragePath | None = None

    def _moved(self, actor: str, node_id: str | None) -> None:
        """`actor` was restarted on `node_id`: placement.json says so."""
        if self.placement is not None and node_id and self.placement["actors"].get(actor) != node_id:
            move_actor(self.placement, actor, node_id)
            if self.run_dir is None:
                raise RuntimeError("the collector has a placement but no run_dir to write it to")
            write_placement(self.run_dir, self.placement)

    def collect(self, slot: int, num_steps: int, seeding: bool, random_tasks=()) -> Job:
        def restarted(exc):  # Ray restarts the actor (or it was unreachable): give it the current weights
            self.in_flight[slot] -= 1
            if self.weights is None:
                raise RuntimeError(f"runner {slot} restarted before any weights were published") from exc
            self.runners[slot].set_weights.remote(*self.weights)
            new_process, lost = self._lost(slot)
            if new_process:
                self.reconcile.add(slot % len(self.shards))
                with contextlib.suppress(RayActorError, GetTimeoutError):
                    self._moved(f"runner-{slot}", ray.get(self.runners[slot].node_id.remote(), timeout=30))
            self.credited[slot % len(self.shards)].subtract(lost)
            return {
                "restarted": new_process,
                "unreachable": not new_process,
                "slot": slot,
                "error": one_line(exc),
                "lost_tasks": lost,
            }

        def finish(values):
            self.in_flight[slot] -= 1
            stats = values[0]
            producer, reports = stats.pop("producer"), stats.pop("reports")
            last = self.acked[slot][1] if self.acked[slot][0] == producer else -1
            new = [r for r in reports if r["call"] > last]
            self.acked[slot] = (producer, max(r["call"] for r in reports))
            stats["collected"] = sum(r["collected"] for r in new)
            stats["episodes"] = [e for r in new for e in r["episodes"]]
            self.credited[slot % len(self.shards)].update(e[0] for e in stats["episodes"])
            self.reported[slot] += [(producer, seq, task) for r in new for seq, task in r["final_sources"]]
            return stats

        self.in_flight[slot] += 1
        return Job(
            refs=[self.runners[slot].collect.remote(num_steps, seeding, list(random_tasks), self.acked[slot])],
            finish=finish,
            on_error=restarted,
        )

    def _lost(self, slot: int) -> tuple[bool, list[int]]:
        """(whether runner `slot` is a new process, the tasks of the episodes its old incarnation reported that its
        shard, flushed, does not hold). A runner that was only unreachable for a moment still has what it handed
        over and sends it again to a restarted shard itself."""
        from ray.exceptions import RayActorError

        try:
            current = ray_value(self.runners[slot].current_producer.remote())
        except RayActorError:
            current = None
        new_process = current != self.acked[slot][0] or current is None
        if new_process and current is not None:  # a second failed call of the same new process is no new restart
            self.acked[slot] = (current, -1)
        reported = [r for r in self.reported[slot] if r[0] != current]
        self.reported[slot] = [r for r in self.reported[slot] if r[0] == current]
        if not reported:
            return new_process, []
        shard = self.shards[slot % len(self.shards)]
        ray.get(shard.flush.remote())  # a live shard commits what it was handed; a restarted one has lost it
        lost = []
        for producer in {p for p, _, _ in reported}:
            _, top, gaps = ray.get(shard.committed.remote(producer))
            lost += [task for p, seq, task in reported if p == producer and (seq > top or seq in set(gaps))]
        return new_process, lost

    def set_weights(self, weights, version: int) -> None:
        self.weights = (weights, version)
        for r in self.runners:
            r.set_weights.remote(weights, version)

    def drain(self) -> list[dict]:
        """Episodes the runners reported are in their shards, and committed. Returns what a shard restarted
        since the last drain reopened: an incident each ("shard_restart", or "shard_data_lost" when the store
        it reopened is older than the one it had committed to), and the counters' corrections for a shard
        that lost data ("counter_delta": task id -> episodes, negative for lost ones)."""
        drained = []
        for slot, ref in enumerate([r.drain.remote() for r in self.runners]):
            try:
                ray.get(ref)
                drained.append(slot)
            except RayActorError:  # a runner being restarted: its restart result says what was lost
                continue
        ray.get([s.flush.remote() for s in self.shards])
        for slot in drained:
            self.reported[slot] = []
        if self.placement is not None:  # a runner restarted since the last drain: placement.json says where
            for slot, ref in [(s, self.runners[s].node_id.remote()) for s in drained]:
                with contextlib.suppress(RayActorError):
                    self._moved(f"runner-{slot}", ray.get(ref))
        return self.check_shards(drained)

    def check_shards(self, drained: Collection[int] = ()) -> list[dict]:
        """Each shard's state against the last one seen: a shard restarted (a new incarnation) must have
        reopened at least what it had committed. If its storage is not reachable from its new node, it
        reopened an older or an empty store: the episodes counted for it that it no longer holds are lost,
        named (shard, node, path, count) in one incident, and the run goes on with what it holds. From then
        on, at every drain its runners all took part in (every episode they reported is committed), the
        counters for that shard are set to what it holds: what was lost with a dying runner and what a
        restarted one handed over again cannot be told apart from the driver as it happens."""
        incidents = []
        for i, ref in enumerate([s.state.remote() for s in self.shards]):
            try:
                now = ray_value(ref)
            except RayActorError:  # being restarted: checked at the next drain
                continue
            before, self.known[i] = self.known.get(i), now
            held = Counter(now["whole_per_task"])
            if before is None:  # at start (a resumed run's shard holds what its checkpoint counted)
                self.credited[i] = Counter(held)
            writers = range(i, self.slots, len(self.shards))
            # every episode its runners reported is committed, and every one committed was reported: no collect
            # reply is still on its way (its episodes would be held before they are counted)
            settled = all(slot in drained and self.in_flight[slot] == 0 for slot in writers)
            lost_now = False  # restarted without its data at this check: what it lost comes off at once
            if before is not None and now["incarnation"] != before["incarnation"]:
                name, node = Path(now["path"]).name, node_label(now["node"]) if now["node"] else "?"
                self._moved(name, now["node"])
                self.reconcile.add(i)  # what was in flight to the old incarnation: the store says what arrived
                if now["opened_generation"] >= before["generation"]:
                    incidents.append(
                        {
                            "kind": "shard_restart",
                            "key": ("shard", i, now["incarnation"]),
                            "shard": name,
                            "line": f"replay {name} was restarted on {node} and reopened its store from "
                            f"storage: {sum(held.values())} committed episodes, none lost with it",
                        }
                    )
                else:
                    lost, lost_now = sum((self.credited[i] - held).values()), True
                    incidents.append(
                        {
                            "kind": "shard_data_lost",
                            "key": ("shard", i, now["incarnation"]),
                            "shard": name,
                            "episodes_lost": lost,
                            "line": f"replay {name} was restarted on {node} without its data: the store at {now['path']} "
                            f"held {before['generation']} commits, the one it reopened {now['opened_generation']} "
                            f"(its storage is not reachable from that node: give every node one shared run_dir, "
                            f"e.g. s3://bucket/prefix); {lost} committed episodes lost (taken off the counters), "
                            f"the run goes on with the other shards and what this one collects from now",
                        }
                    )
            if i in self.reconcile and (settled or lost_now):
                if settled:
                    self.reconcile.discard(i)
                delta = {
                    t: held[t] - self.credited[i][t]
                    for t in set(held) | set(self.credited[i])
                    if held[t] != self.credited[i][t] and (settled or held[t] < self.credited[i][t])
                }
                self.credited[i].update(delta)  # = held where settled; unsettled, only what is lost comes off
                for slot in writers:  # what its runners reported is in the delta: a later restart takes nothing off
                    self.reported[slot] = []
                if delta:
                    incidents.append({"kind": None, "counter_delta": delta})
        return incidents

    def close(self) -> None:
        ray.get([s.close.remote() for s in self.shards], timeout=60)


class RayEvaluator(Evaluators):
    """The evaluator actor, which Ray restarts when it dies (on another node when its node is lost). Every
    evaluation also says which node it ran on. An evaluation the actor lost returns `{"lost": True}` and the
    loop sends it again with the current weights; either that, or a result from a node other than the last,
    carries an `incident` for the loop to report (once per lost node: its key is the node); placement.json is
    rewritten to say where it runs now."""

    def __init__(self, actor, placement: dict, run_dir: StoragePath):
        super().__init__([actor], remote=True)
        self.placement, self.run_dir = placement, run_dir
        self.node_id = placement["actors"]["evaluator"]  # where it last ran

    def _incident(self, line: str) -> dict:
        return {
            "kind": "evaluator_restart",
            "line": line,
            "key": ("evaluator", self.node_id),
            "node": self.node_id,
            "actors_lost": ["evaluator"],
            "restarted": ["evaluator"],
        }

    def evaluate(self, weights, version: int, **kw) -> Job:
        actor = self.members[0]

        def finish(values):
            node_id, result = values
            if node_id != self.node_id:  # restarted since the last evaluation, none of which it lost
                result["incident"] = self._incident(
                    f"evaluator restarted: it ran on {node_label(self.node_id)}, now on {node_label(node_id)}"
                )
                self.node_id = node_id
                move_actor(self.placement, "evaluator", node_id)  # placement.json says where it runs now
                write_placement(self.run_dir, self.placement)
            return result

        def lost(exc) -> dict:
            # the type names the failure (ActorDiedError, ActorUnavailableError: restarting); Ray's message,
            # long and full of ids, goes to errors.log with the traceback
            dead = not any(n["NodeID"] == self.node_id and n["Alive"] for n in ray.nodes())
            what = f"lost with its {node_label(self.node_id)}" if dead else f"died on {node_label(self.node_id)}"
            incident = self._incident(
                f"evaluator {what} ({type(exc).__name__}); Ray restarts it on a live node and "
                f"the evaluation is sent again with the current weights"
            )
            return {"lost": True, "incident": {**incident, "exc": exc}}

        # in the actor's call order: the node, then the evaluation (a restarted actor answers both anew)
        return Job(
            refs=[actor.__ray_call__.remote(_node_id), actor.evaluate.remote(weights, version, **kw)],
            finish=finish,
            on_error=lost,
        )


def build(loop) -> Parts:
    """Start the actors of `loop` (a distributed.loop.Loop) on the connected Ray cluster."""
    from distributed.actors import actor_classes
    from distributed.ray_session import RAY_LOG, divert_ray_console
    from distributed.storage import append_text

    cfg, ts = loop.cfg, loop.task_set
    check_resources(cfg, ray.cluster_resources())
    check_cluster_storage(cfg, sum(1 for n in ray.nodes() if n.get("Alive")))
    log = loop.run_dir / RAY_LOG  # a lost node's raylet log tail and dying actors' tracebacks: not console lines
    divert_ray_console(lambda text: append_text(log, text), str(log))
    C = actor_classes()
    runner_cfg = build_agent_config(cfg, ts, device=cfg.runner_device or cfg.device)
    masks = ts.action_masks().astype(np.float32)
    # runners find their shard by name: a restartable actor must not take an actor handle as a
    # constructor argument (Ray keeps such arguments in the object store, and a restart fails once they are gone)
    token = uuid.uuid4().hex[:8]
    usable = usable_shards(loop, cfg.shards)
    shard_names = [f"latentfleet-{token}-shard-{i:03d}" for i in usable]
    shards = [
        C["shard"]
        .options(
            name=name,
            num_cpus=cfg.cpus_per_shard,
            max_restarts=-1,
            max_task_retries=-1,
            scheduling_strategy=STRATEGIES["shard"],
        )
        .remote(
            str(loop.run_dir / "replay" / f"shard-{i:03d}"),
            obs_dim=ts.max_obs_dim,
            action_dim=ts.max_action_dim,
            chunk_len=cfg.chunk_len,
            cache_bytes=cfg.shard_cache_mb << 20,
            flush_every_s=cfg.shard_flush_s,
            seed=cfg.seed * 31 + i,
            task_names=list(ts.names),
        )
        for i, name in zip(usable, shard_names, strict=False)
    ]
    runners = [
        C["runner"]
        .options(
            num_cpus=cfg.cpus_per_runner,
            num_gpus=cfg.gpus_per_runner,
            max_restarts=-1,
            scheduling_strategy=STRATEGIES["runner"],
        )
        .remote(
            runner_cfg,
            cfg.task,
            tasks,
            shard_names[i % len(shards)],
            envs_per_task=cfg.envs_per_task,
            seed=cfg.seed,
            runner_id=i,
            torch_threads=_threads(cfg.cpus_per_runner),
            max_episode_steps=cfg.max_episode_steps,
            piece_horizon=cfg.planner.horizon if cfg.partial_episodes else None,
        )
        for i, tasks in enumerate(assign_tasks(ts, cfg.num_runners, loop.tasks))
    ]
    pg = learner_group_placement(cfg, token)

    def in_group(r):
        return (
            {}
            if pg is None
            else {
                "scheduling_strategy": PlacementGroupSchedulingStrategy(  # noqa: E731
                    pg, placement_group_bundle_index=r
                )
            }
        )

    def start_learners() -> list:
        # a rebuilt group takes the same bundles (Ray re-places the bundles of a lost node on live ones)
        group = [
            C["learner"]
            .options(num_cpus=cfg.cpus_per_learner, num_gpus=cfg.gpus_per_learner, **in_group(r))
            .remote(
                loop.agent_cfg,
                masks,
                shards,
                batch_size=cfg.batch_size,
                rank=r,
                world_size=cfg.num_learners,
                seed=cfg.seed,
                torch_threads=_threads(cfg.cpus_per_learner),
                balance=cfg.balance,
                offline_data=str(cfg.offline_data) if cfg.offline_data else None,
                offline_ratio=cfg.offline_ratio,
                cache_bytes=cfg.shard_cache_mb << 20,
            )
            for r in range(cfg.num_learners)
        ]
        if cfg.num_learners > 1:
            addr = ray.get(group[0].address.remote())
            ray.get([lr.init_process_group.remote(f"tcp://{addr}") for lr in group])
        return group

    # the evaluator holds nothing but a policy it is handed weights for: Ray restarts it wherever there is room
    # (elsewhere, if its node is lost), and the loop sends a lost evaluation again (RayEvaluator)
    evaluator = (
        C["evaluator"]
        .options(
            num_cpus=cfg.cpus_per_evaluator,
            resources=dict(cfg.resources_per_evaluator),
            max_restarts=-1,
            scheduling_strategy=STRATEGIES["evaluator"],
        )
        .remote(runner_cfg, cfg.task, _threads(cfg.cpus_per_evaluator))
    )
    collector = RayCollector(runners, shards)
    collector.check_shards()  # each shard's state at start: what a restart must reopen
    actors = {"runners": runners, "shards": shards, "learners": start_learners(), "evaluator": [evaluator]}

    def rebuild_learners() -> tuple[Learners, str]:
        """A new group in place of one that lost a member: the survivors would wait for it at every
        all-reduce, so every rank goes; the new ranks start fresh (the loop loads its newest state) in a new
        placement group (the old one's bundles on a lost node would hold them back until Ray re-placed them).
        Returns the group and the node(s) the old ranks ran on (a lost node may not be declared dead yet)."""
        nonlocal pg
        old = sorted({placement["actors"][f"learner-{r}"] for r in range(len(actors["learners"]))})
        where = ", ".join(node_label(n) for n in old)
        for a in actors["learners"]:
            with contextlib.suppress(Exception):
                ray.kill(a)
        if pg is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(pg)
            pg = learner_group_placement(cfg, uuid.uuid4().hex[:8])  # waits for room (a node joining)
        actors["learners"] = start_learners()
        nodes = ray.get([a.__ray_call__.remote(_node_id) for a in actors["learners"]])
        for r, node_id in enumerate(nodes):
            move_actor(placement, f"learner-{r}", node_id)
        write_placement(loop.run_dir, placement)  # placement.json says where the ranks run now
        return Learners(actors["learners"], remote=True), where

    def close() -> None:
        try:
            collector.close()
        finally:
            for a in [a for role in actors.values() for a in role]:
                with contextlib.suppress(Exception):
                    ray.kill(a)
            if pg is not None:
                from ray.util.placement_group import remove_placement_group

                remove_placement_group(pg)

    named = {
        **{f"shard-{i:03d}": s for i, s in zip(usable, shards, strict=False)},
        **{f"runner-{i}": r for i, r in enumerate(runners)},
        **{f"learner-{r}": lr for r, lr in enumerate(actors["learners"])},
        "evaluator": evaluator,
    }
    try:
        placement = actor_placement(named)
    except ConfigError:
        close()
        raise
    report_placement(loop.run_dir, placement)
    collector.placement, collector.run_dir = placement, loop.run_dir  # restarts move actors in placement.json
    return Parts(
        collector=collector,
        learners=Learners(actors["learners"], remote=True),
        evaluator=RayEvaluator(evaluator, placement, loop.run_dir),
        publish_every=cfg.publish_every,
        close=close,
        actors=actors,
        rebuild_learners=rebuild_learners,
    )
