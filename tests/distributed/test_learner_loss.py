"""A learner that dies mid-run (its process killed with a real SIGKILL, as a lost node would take it) costs
the updates since the newest state the driver reaches, not the run: every rank of the group is replaced
(a surviving rank would wait for the dead one at every all-reduce), the new group loads the last checkpoint,
the run reaches its steps, and the loss is one line on the console and in summary.json."""

import json
import os
import signal
import threading
import time

import pytest

from distributed.config import compose
from distributed.loop import Loop


@pytest.mark.ray
@pytest.mark.slow
def test_a_killed_learner_rank_costs_updates_not_the_run(tmp_path, ray_session, capfd):
    ray = ray_session
    loop = Loop(
        compose(
            "mt80",
            [
                "preset=smoke",
                "task='cartpole-balance,pendulum-swingup'",
                "num_runners=2",
                "num_learners=2",
                "batch_size=16",
                "steps=1600",
                "seed_steps=200",
                "utd=0.2",
                "checkpoint_freq=400",
                f"run_dir={tmp_path}/run",
            ],
        )
    )
    events: dict = {}

    def killer():
        try:
            while not (tmp_path / "run" / "checkpoint.pt").exists() or loop.env_steps < 700:
                time.sleep(0.05)
            events["pid"] = ray.get(loop.parts.actors["learners"][1].pid.remote())
            events["updates"] = loop.updates
            os.kill(events["pid"], signal.SIGKILL)  # rank 1: rank 0 is left waiting in an all-reduce
        except Exception as exc:  # noqa: BLE001  checked below
            events["error"] = f"{type(exc).__name__}: {exc}"

    try:
        loop.start()
        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        summary = loop.run()
        thread.join(timeout=10)
        new_pids = ray.get([a.pid.remote() for a in loop.parts.actors["learners"]])
    finally:
        loop.shutdown()
    assert "error" not in events and "pid" in events, events
    assert events["pid"] not in new_pids and len(new_pids) == 2  # both ranks are new processes
    (line,) = [i for i in summary["incidents"] if "learner died" in i]
    assert "rebuilt from the last checkpoint" in line and "updates lost" in line
    (entry,) = [i for i in loop.incidents.items if i["kind"] == "learners_rebuilt"]
    assert 0 <= entry["updates_lost"] <= events["updates"] + 100
    assert summary["env_steps"] >= 1600 and summary["updates"] >= 0.2 * (1600 - 200) - 20  # the ratio is met again
    assert summary["failures"] == []  # the rebuilt ranks end identical (the digests agree)
    err = capfd.readouterr().err
    assert sum(line in row for row in err.splitlines()) == 1 and "Traceback" not in err
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["incidents"] == summary["incidents"]
