"""`ray job submit -- python launch/mt80.py` against a real local Ray head that this test starts
(loopback only, its own temp dir, auth off) and stops (only its own processes): mt80 end to end, all
80 tasks, two learner ranks, the final diagnostics."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from distributed.ray_session import processes_with
from distributed.testing.jobs import store_episodes

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head():
    temp_dir = tempfile.mkdtemp(prefix="rayhead", dir="/tmp")  # short: socket paths have a length limit
    port, dash = _free_port(), _free_port()
    # the agents' ports of its own: another Ray on this machine (the test session's) already holds the
    # default dashboard-agent port 52365 (whether that caused the "No available agent" refusals seen
    # on a loaded machine is not established: with it held and the defaults kept, the test passed here)
    own_ports = [
        f"--{name}={_free_port()}"
        for name in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port")
    ]
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "RAY_AUTH_MODE": "disabled",
        "MUJOCO_GL": "egl",
        "WANDB_MODE": "disabled",
    }
    head = subprocess.Popen(
        [
            str(VENV_BIN / "ray"),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            f"--temp-dir={temp_dir}",
            "--num-cpus=2",
            *own_ports,
        ],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"http://127.0.0.1:{dash}"
    deadline = time.time() + 120
    while time.time() < deadline:
        probe = subprocess.run(
            [str(VENV_BIN / "ray"), "job", "list", "--address", address], env=env, capture_output=True
        )
        if probe.returncode == 0:
            break
        time.sleep(2)
    else:
        head.kill()
        pytest.fail("the test's Ray head did not come up")
    yield address, env
    os.killpg(head.pid, signal.SIGTERM)
    try:  # `ray start --block` takes ~30 s to act on SIGTERM; nothing of the head's needs to outlive the test
        head.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
    time.sleep(1)
    for pid in processes_with(temp_dir):  # anything of ours that outlived its group
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.ray
def test_ray_job_submit_runs_mt80_end_to_end_with_two_learner_ranks(ray_head, tmp_path):
    address, env = ray_head
    run_dir = tmp_path / "run"
    sub_id = f"latentfleet-test-{os.getpid()}"
    cmd = [
        str(VENV_BIN / "ray"),
        "job",
        "submit",
        "--address",
        address,
        "--submission-id",
        sub_id,
        "--no-wait",
        "--working-dir",
        str(REPO),
        "--",
        "python",
        "launch/mt80.py",
        "preset=smoke",
        "num_learners=2",
        "diagnostics=true",
        f"run_dir={run_dir}",
    ]
    for _ in range(30):  # the head answers before its job agent is up: "No available agent ... try again later"
        submit = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if submit.returncode == 0 or "try again later" not in submit.stderr + submit.stdout:
            break
        time.sleep(3)
    assert submit.returncode == 0, submit.stderr
    deadline, status = time.time() + 600, ""
    while time.time() < deadline:
        status = subprocess.run(
            [str(VENV_BIN / "ray"), "job", "status", "--address", address, sub_id],
            env=env,
            capture_output=True,
            text=True,
        ).stdout.lower()
        if any(s in status for s in ("succeeded", "failed", "stopped")):
            break
        time.sleep(3)
    logs = subprocess.run(
        [str(VENV_BIN / "ray"), "job", "logs", "--address", address, sub_id], env=env, capture_output=True, text=True
    ).stdout
    assert "succeeded" in status, f"{status}\n{logs[-3000:]}"
    assert "cluster at" in logs  # it joined the submitted-to cluster, not an embedded one
    summary = json.loads((run_dir / "summary.json").read_text())
    # no failure: among others, the two learner ranks end with identical parameters (the job compares them)
    assert summary["failures"] == [], summary["failures"]
    assert summary["updates"] >= 20 and summary["updates"] % 10 == 0
    tasks_in_store = {task for task, _ in store_episodes(run_dir).values()}
    assert tasks_in_store == set(range(80)), f"tasks without episodes: {set(range(80)) - tasks_in_store}"
    from distributed.replay.inspect import episode_index

    shards = [p for p in (run_dir / "replay").glob("shard-*") if p.is_dir()]  # not the writers' lock files
    versions = [v for shard in shards for v in episode_index(shard)["version"]]
    assert versions and min(versions) >= 1, "every stored episode records the weights version it was collected with"
    table = (run_dir / "eval.csv").read_text().splitlines()
    assert len(table) == 81 and table[0].startswith("task,domain,return")
    assert (run_dir / "checkpoint.pt").exists() and (run_dir / "eval.md").exists()
    assert (run_dir / "eval_tasks.png").stat().st_size > 1000
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "eval" and "normalized_score" in r for r in rows)
    # rank 0's per-task latent diagnostics: a scalar row and the report
    diag = [r for r in rows if r["kind"] == "diag"][-1]
    assert any(k.startswith("diag/walker-walk/") for k in diag) and any(k.startswith("diag/mw-reach/") for k in diag)
    assert (run_dir / "diagnostics" / "summary.md").exists()


@pytest.fixture
def job_home(tmp_path, monkeypatch):
    """HOME of the Ray head (and so of its jobs) in the test's folder; set before ray_head starts."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.mark.slow
@pytest.mark.ray
def test_a_submitted_job_without_run_dir_keeps_its_run_outside_rays_package_folder(job_home, ray_head):
    """`ray job submit --working-dir .` runs the job inside Ray's temporary package folder, which Ray
    deletes with the cluster: the default run directory goes under ~/latentfleet-runs instead."""
    address, env = ray_head
    sub_id = f"latentfleet-home-{os.getpid()}"
    cmd = [
        str(VENV_BIN / "ray"),
        "job",
        "submit",
        "--address",
        address,
        "--submission-id",
        sub_id,
        "--working-dir",
        str(REPO),
        "--",
        "python",
        "launch/mt80.py",
        "preset=smoke",
        "task=cartpole-balance",
        "steps=200",
    ]
    for _ in range(30):  # as above: the job agent may not be up yet
        submit = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if submit.returncode == 0 or "try again later" not in submit.stderr + submit.stdout:
            break
        time.sleep(3)
    assert submit.returncode == 0, submit.stdout[-3000:] + submit.stderr[-3000:]
    run_dir = job_home / "latentfleet-runs" / "cartpole-balance-tiny-smoke-s1"
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 200
    assert (run_dir / "checkpoint.pt").exists() and (run_dir / "replay" / "shard-000" / "zarr.json").exists()
