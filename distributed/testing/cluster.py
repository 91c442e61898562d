"""A Ray cluster of several nodes simulated on this one machine (`ray.cluster_utils.Cluster`), for
tests of the main job on a cluster: a head with 0 CPUs (it holds GCS and the driver, never an actor)
and worker nodes named w1, w2, ...; a test removes a node without grace and adds a fresh one.

The cluster lives in a child process of its own (`python -m distributed.testing.cluster`), driven by
one JSON command per line on stdin, one JSON reply per line on stdout. A pytest process may already
hold the session's Ray (the `ray_session` fixture), and a process holds one Ray: this way it never
holds a second one, and the job under test runs as a user runs it, `python launch/mt80.py` with
RAY_ADDRESS set to the cluster. Everything the cluster starts lives under a temp dir of its own
(RAY_TMPDIR too, so not even Ray's "current cluster" address file is shared with other Rays on the
machine), and `stop` kills only processes whose command line names that dir. `SMALL_JOB` is a job small
enough for it and `wait_for` polls a running job.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from ray._private.node import Node

REPO = Path(__file__).resolve().parents[2]
SMALL_JOB = [
    "preset=smoke",
    "task='cartpole-balance,cartpole-swingup'",
    "num_runners=2",
    "num_shards=2",
    "steps=800",
    "seed_steps=400",
    "storage_shared=true",
]  # launch/mt80.py's overrides of a job on the cluster: ~40 updates; every simulated node shares the disk

# Fast failure detection: GCS declares a node dead after ~3 missed 1 s health checks (Ray's default
# waits 5 x 3 s plus a 5 s start delay). Not faster: on 2 busy cores a healthy raylet can miss a check.
HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 1000,
    "health_check_timeout_ms": 2000,
    "health_check_failure_threshold": 3,
}


def _descendants(roots: list[int]) -> list[int]:
    """Every live process below `roots` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    out, todo = [], list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def wait_for(what: str, check, job: subprocess.Popen, timeout_s: float = 300):
    """Poll `check()` until it returns something truthy; the job ending first, or the time running out, fails
    (AssertionError)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        assert job.poll() is None, f"the job ended (exit {job.returncode}) before {what}"
        time.sleep(0.5)
    raise AssertionError(f"no {what} in {timeout_s:.0f} s")


# -- the child process: owns the Cluster -------------------------------------------------------------------
class _Controller:
    def __init__(self, temp_dir: str):
        from ray.cluster_utils import Cluster

        self.temp_dir = temp_dir
        self.cluster = Cluster(
            initialize_head=True,
            connect=False,
            head_node_args={
                "num_cpus": 0,
                "include_dashboard": False,
                "dashboard_host": "127.0.0.1",
                "node_ip_address": "127.0.0.1",
                "node_name": "head",
                "temp_dir": temp_dir,
                "_system_config": HEALTH_CHECKS,
            },
        )
        self.nodes: dict[str, Node] = {}  # workers only
        self.added = 0

    def add(self, num_cpus: float = 1, resources: dict | None = None) -> dict:
        self.added += 1
        name = f"w{self.added}"  # never reused: a fresh node is a new name
        node = self.cluster.add_node(
            num_cpus=num_cpus,
            resources=resources or {},
            node_name=name,
            node_ip_address="127.0.0.1",
            dashboard_host="127.0.0.1",
        )
        self.nodes[name] = node
        return {"name": name, "node_id": node.node_id}

    def remove(self, name: str) -> dict:
        """Kill every process of the node at once (SIGKILL, no grace): a preempted machine. Ray's
        remove_node kills the node's own daemons; its worker processes (the actors) would notice their
        raylet is gone only later and go on working meanwhile, which a lost machine's processes do not:
        they are SIGKILLed first, with the daemons' other descendants."""
        node = self.nodes.pop(name)
        daemons = [info.process.pid for infos in node.all_processes.values() for info in infos]
        for pid in _descendants(daemons):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.cluster.remove_node(node, allow_graceful=False)
        return {"name": name, "node_id": node.node_id}

    def info(self) -> dict:
        return {
            "address": self.cluster.address,
            "temp_dir": self.temp_dir,
            "nodes": {n: node.node_id for n, node in self.nodes.items()},
        }

    def stop(self) -> dict:
        self.cluster.shutdown()
        return {"stopped": True}


def _serve() -> None:
    temp_dir = os.environ["RAY_TMPDIR"]
    os.makedirs(os.path.join(temp_dir, "ray"), exist_ok=True)  # where Ray writes its address file under RAY_TMPDIR
    reply_to = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything Ray prints goes to stderr; stdout carries only the replies
    controller: _Controller | None = None

    def started() -> _Controller:
        if controller is None:
            raise RuntimeError("no cluster yet: the first op must be 'start'")
        return controller

    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd["op"] == "start":
                controller = _Controller(temp_dir)
                for _ in range(cmd["workers"]):
                    controller.add(cmd["num_cpus"])
                controller.cluster.wait_for_nodes()
                out = controller.info()
            elif cmd["op"] == "add":
                out = started().add(cmd.get("num_cpus", 1), cmd.get("resources"))
                started().cluster.wait_for_nodes()
            elif cmd["op"] == "remove":
                out = started().remove(cmd["name"])
            elif cmd["op"] == "info":
                out = started().info()
            elif cmd["op"] == "stop":
                out = controller.stop() if controller else {"stopped": True}
                reply_to.write(json.dumps(out) + "\n")
                return
            else:
                out = {"error": f"unknown op {cmd['op']!r}"}
        except Exception as exc:  # noqa: BLE001  the test reads the reason and fails with it
            out = {"error": f"{type(exc).__name__}: {exc}"}
        reply_to.write(json.dumps(out) + "\n")


# -- the test side ------------------------------------------------------------------------------------------
class SimulatedCluster:
    """Handle to the child process that holds the cluster. `address` is the GCS address for RAY_ADDRESS;
    `env` the environment a job on it runs with; `nodes` maps worker names to node ids."""

    def __init__(self, workers: int = 2, num_cpus: float = 1, start_timeout_s: float = 180, env: dict | None = None):
        """`env`: more environment for every node's processes and for jobs (e.g. an S3 endpoint and
        credentials: Ray does not forward a driver's environment to actors on other nodes)."""
        extra = dict(env or {})
        self.temp_dir = tempfile.mkdtemp(prefix="lfc", dir="/tmp")  # short: Ray's socket paths have a length limit
        # Loopback only: every node binds 127.0.0.1, and a driver given RAY_ADDRESS=127.0.0.1:<port> would
        # otherwise swap 127.0.0.1 for this machine's outward IP (ray.init "resolves" localhost) and find no
        # GCS there; this Ray switch (named for Windows/macOS, it only changes that resolution) keeps loopback
        loopback = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        env = {
            **os.environ,
            **extra,
            **loopback,
            "RAY_TMPDIR": self.temp_dir,
            "RAY_AUTH_MODE": "disabled",
            # as distributed/ray_session.py: actors are the work; at Ray's nice 15 the 2 cores' other users starve them
            "RAY_worker_niceness": os.environ.get("RAY_worker_niceness", "0"),
            "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        }
        self.log = open(Path(self.temp_dir) / "controller.log", "w")  # noqa: SIM115  closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "distributed.testing.cluster"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            start_new_session=True,
        )
        info = self._call({"op": "start", "workers": workers, "num_cpus": num_cpus}, timeout_s=start_timeout_s)
        self.address, self.nodes = info["address"], info["nodes"]
        self.env = {
            **os.environ,
            **extra,
            **loopback,
            "RAY_ADDRESS": self.address,
            "RAY_AUTH_MODE": "disabled",
            "RAY_TMPDIR": self.temp_dir,
        }

    def _call(self, cmd: dict, timeout_s: float = 120) -> dict:
        import select

        stdin, stdout = self._pipes()
        stdin.write(json.dumps(cmd) + "\n")
        stdin.flush()
        ready, _, _ = select.select([stdout], [], [], timeout_s)
        line = stdout.readline() if ready else ""
        if not line:
            self.stop()
            raise RuntimeError(
                f"simulated cluster: no reply to {cmd['op']!r} in {timeout_s:.0f} s; its log: {self._log_tail()}"
            )
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"simulated cluster: {cmd['op']!r} failed: {out['error']}")
        return out

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        """The controller's stdin and stdout (opened as pipes in __init__)."""
        if self.proc.stdin is None or self.proc.stdout is None:
            raise RuntimeError("simulated cluster: the controller process has no stdin/stdout pipes")
        return self.proc.stdin, self.proc.stdout

    def _log_tail(self, chars: int = 1500) -> str:
        with contextlib.suppress(OSError):
            return (Path(self.temp_dir) / "controller.log").read_text()[-chars:]
        return "(no log)"

    def remove_node(self, name: str) -> str:
        """Kill node `name` without grace; returns its node id."""
        node_id = self._call({"op": "remove", "name": name})["node_id"]
        self.nodes.pop(name)
        return node_id

    def add_node(self, num_cpus: float = 1, resources: dict | None = None) -> str:
        """A fresh worker node; returns its name."""
        out = self._call({"op": "add", "num_cpus": num_cpus, "resources": resources})
        self.nodes[out["name"]] = out["node_id"]
        return out["name"]

    def stop(self) -> None:
        """Shut the cluster down, then kill whatever of ours outlived it (only processes naming our temp dir)."""
        from distributed.ray_session import processes_with

        if self.proc.poll() is None:
            stdin, _ = self._pipes()
            with contextlib.suppress(OSError, ValueError):
                stdin.write(json.dumps({"op": "stop"}) + "\n")
                stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        time.sleep(0.5)
        for pid in processes_with(self.temp_dir):
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile: what we wanted
                os.kill(pid, signal.SIGKILL)
        self.log.close()
        shutil.rmtree(
            self.temp_dir, ignore_errors=True
        )  # Ray's session logs: the job's own output is in the test's tmp_path


if __name__ == "__main__":
    _serve()
