"""What Ray forwards to the driver's console: a cluster event is one line there and whole in ray.log; an
actor's traceback goes to ray.log only; an actor's ordinary output is printed as Ray prints it."""

import ray._private.worker as ray_worker

from distributed.ray_session import divert_ray_console


def test_ray_messages_are_one_line_on_the_console_and_whole_in_the_log(capsys):
    kept: list[str] = []
    before = ray_worker.print_to_stdstream
    divert_ray_console(kept.append, "run/ray.log")
    try:
        say = ray_worker.print_to_stdstream  # what Ray's error listener calls, looked up at every message
        say(
            {
                "lines": [
                    "The node with node id: 5c8b and address: 127.0.0.1 and node name: w1 has been marked dead "
                    "because the detector has missed too many heartbeats from it. This can happen when a",
                    "\t(1) raylet crashes unexpectedly (OOM, etc.)",
                ],
                "pid": "raylet",
                "is_err": False,
            },
            ignore_prefix=False,
        )
        say(
            {
                "lines": ["Exception in thread shard-flush:", "Traceback (most recent call last):", '  File "x.py"'],
                "pid": 4242,
                "ip": "127.0.0.1",
                "is_err": True,
                "actor_name": "ReplayShardActor",
            },
            ignore_prefix=False,
        )
        say(
            {
                "lines": [
                    "[2026-12-05 02:07:47,353 E 7535 7560] (raylet) agent_manager.cc:87: The raylet exited "
                    "immediately because one Ray agent failed, agent_name = dashboard_agent."
                ],
                "pid": "raylet",
                "is_err": False,
            },
            ignore_prefix=False,
        )
        say({"lines": ["an actor's own line"], "pid": 4243, "ip": "127.0.0.1", "is_err": False}, ignore_prefix=False)
    finally:
        ray_worker.print_to_stdstream = getattr(ray_worker.print_to_stdstream, "original", before)
    out = capsys.readouterr()
    console = out.out + out.err
    assert console.count("\n") == 4, console  # two events' gists, the pointer to ray.log, the actor's line
    assert (
        "ray: The raylet exited immediately because one Ray agent failed, agent_name = dashboard_agent. (all" in console
    )  # a raylet log line: its message, not its time, pid and source line
    assert (
        "has been marked dead because the detector has missed too many heartbeats from it. (all of it in "
        "run/ray.log)" in console
    )
    assert "raylet crashes" not in console and "Traceback" not in console
    assert "an actor's own line" in console
    assert len(kept) == 3 and "raylet crashes" in kept[0] and "Traceback (most recent call last)" in kept[1]
