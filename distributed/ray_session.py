"""Joining a cluster or starting an embedded local Ray, once per driver."""

from __future__ import annotations

import contextlib
import os
import re
import time


def init_ray(address: str | None = None, num_cpus: int | None = None, temp_dir: str | None = None) -> str:
    """Join the cluster given by `address`, RAY_ADDRESS or `ray job submit`; otherwise start an
    embedded local Ray sized to this machine (dashboard off, bound to loopback). Returns which."""
    import ray

    if ray.is_initialized():
        return "already initialized"
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return f"cluster at {address}"
    # Ray starts its workers at nice 15 (to keep its own daemons responsive); in a run that owns the
    # machine the actors ARE the work, and at 15 anything else (the driver, a test) starves them
    os.environ.setdefault("RAY_worker_niceness", "0")
    # address="local": always a new cluster, never some other Ray already running on this machine
    num_cpus = num_cpus or os.cpu_count()
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        dashboard_host="127.0.0.1",
        log_to_driver=True,
        _temp_dir=temp_dir or None,
    )  # None: Ray's default
    return f"embedded local Ray with {num_cpus} CPUs"


RAY_LOG = "ray.log"
# what Ray forwards to the driver's console that is no line for a user: a lost node's raylet log tail, an actor's
# traceback as its process dies (the job's own one-line incident says what happened and what was done)
_DIVERTED = ("Traceback (most recent call last)", "Exception in thread", "Raylet is terminated")


def divert_ray_console(append, where: str) -> None:
    """Send Ray's forwarded raylet messages and actors' tracebacks to `append(text)` (the run's ray.log)
    instead of the driver's console, which keeps everything else Ray prints; the first diverted message
    leaves one line on the console saying where they go. Ray has no option for this (log_to_driver=False
    would silence every actor's output): its driver-side printer (ray._private.worker.print_to_stdstream,
    used by its error listener and by its log dispatcher) is wrapped; a Ray without it is left alone."""
    import functools

    try:
        import ray._private.worker as w
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

        original = getattr(w.print_to_stdstream, "original", w.print_to_stdstream)
        prefix = w._should_ignore_worker_log_prefix(w.global_worker)
    except (ImportError, AttributeError):
        return
    told = []

    def divert(data, ignore_prefix):
        lines = data.get("lines") or []
        system = data.get("pid") in ("raylet", "gcs_server")  # Ray's own messages, not an actor's output
        if not system and not any(marker in line for line in lines for marker in _DIVERTED):
            return original(data, ignore_prefix=ignore_prefix)
        who = data.get("actor_name") or data.get("task_name") or ""
        append(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {data.get('pid')} {who}\n" + "\n".join(lines) + "\n")
        if data.get("pid") == "raylet" and lines:  # a cluster event (a node marked dead, ...): its gist, one line
            # its first sentence, without a log line's "[time level pid tid] (raylet) file.cc:87: " prefix
            gist = re.sub(r"^\[[^\]]*\]\s*(\(\w+\)\s*)?[\w.]+:\d+:\s*", "", " ".join(lines[0].split()))
            end = gist.find(". ") + 1 or len(gist)  # its first sentence
            print(f"ray: {gist[: min(end, 200)]} (all of it in {where})", flush=True)
        elif not told:
            told.append(True)
            print(f"latentfleet: Ray's messages about lost nodes and dying actors go to {where}", flush=True)

    divert.original = original
    w.print_to_stdstream = divert  # the error listener looks it up at every message
    if any(name == "ray_print_logs" for name, _ in dispatcher.handlers):
        dispatcher.remove_handler("ray_print_logs")
        dispatcher.add_handler("ray_print_logs", functools.partial(divert, ignore_prefix=prefix))


def shutdown_ray(timeout_s: float = 10.0) -> int:
    """Stop Ray; for an embedded local Ray also make sure every process it started is gone.

    Ray's own shutdown stops the raylet gracefully, but on a loaded machine the raylet can be
    force-killed before it has stopped its workers, and a worker busy in a long actor method then
    lives on as an orphan (seen here: actors of a finished job still burning CPU minutes later).
    The embedded node's processes and all their descendants are recorded first (Linux /proc) and
    SIGKILLed if they outlive the shutdown. Joined clusters are only disconnected from. Returns
    how many processes had to be killed.
    """
    import signal
    import time

    import ray

    if not ray.is_initialized():
        return 0
    pids = _embedded_ray_pids()
    ray.shutdown(wait_for_processes=True)
    deadline = time.monotonic() + timeout_s
    while pids and time.monotonic() < deadline:
        pids = {p: t for p, t in pids.items() if _same_process(p, t)}
        time.sleep(0.1)
    for pid, start in pids.items():
        if _same_process(pid, start):
            with contextlib.suppress(ProcessLookupError):  # exited between the check and the kill: what we wanted
                os.kill(pid, signal.SIGKILL)
    return len(pids)


def _proc_stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a live process from /proc, None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0], fields[19]


def _same_process(pid: int, start: str) -> bool:
    """Still running (not a zombie) and not a recycled pid."""
    stat = _proc_stat(pid)
    return stat is not None and stat[1] != "Z" and stat[2] == start


def _embedded_ray_pids() -> dict[int, str]:
    """{pid: start time} of the local node's processes this driver started (raylet, GCS, ...)
    and all their descendants (actor workers); empty when connected to an existing cluster."""
    try:
        from ray._private import worker

        node = worker._global_node
        roots = [
            info.process.pid
            for infos in (node.all_processes.values() if node else [])
            for info in infos
            if info.process is not None
        ]
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (stat := _proc_stat(int(entry))) is not None:
                children.setdefault(stat[0], []).append(int(entry))
    except Exception:  # a private API that moved, or no /proc: best effort
        return {}
    out, todo = {}, list(roots)
    while todo:
        pid = todo.pop()
        stat = _proc_stat(pid)
        if stat is not None and pid not in out:
            out[pid] = stat[2]
            todo.extend(children.get(pid, []))
    return out


def processes_with(marker: str) -> list[int]:
    """Pids of the live processes whose command line contains `marker` (e.g. a temp dir of their own)."""
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:  # OSError: it just ended
                if marker in f.read().decode(errors="ignore"):
                    pids.append(int(pid))
    return pids
