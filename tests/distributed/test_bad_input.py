"""Every bad input is refused before work starts: one clear line, exit status 2 on the command
line, and nothing written into an existing run directory."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from distributed.config import ConfigError, compose
from distributed.loop import Loop, run
from distributed.testing.jobs import TINY_RUN

REPO = Path(__file__).resolve().parents[2]
QUICK = [*TINY_RUN, "task=cartpole-balance"]


def _snapshot(run_dir: Path) -> dict:
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory) -> Path:
    """A finished run: every refused command below points at it and must leave it as it is."""
    run_dir = tmp_path_factory.mktemp("bad") / "run"
    run(
        compose(
            "train",
            QUICK
            + ["steps=30", "seed_steps=20", "utd=0.5", "eval_freq=1000", "checkpoint_freq=1000", f"run_dir={run_dir}"],
        )
    )
    return run_dir


CLI_CASES = [  # (override, what the message must name)
    ("steps=abc", "steps"),
    ("planner.num_samples=many", "planner.num_samples"),
    ("stepz=3", "stepz"),
    ("eval_freq=0", "eval_freq"),
    ("checkpoint_freq=0", "checkpoint_freq"),
    ("envs_per_task=0", "envs_per_task"),
    ("collect_steps=0", "collect_steps"),
    ("updates_per_round=0", "updates_per_round"),
    ("num_learners=0", "num_learners"),
    ("batch_size=0", "batch_size"),
    ("seed=-1", "seed"),
    ("steps=-5", "steps"),
    ("eval_episodes=0", "eval_episodes"),
    ("max_episode_steps=5", "max_episode_steps"),
    ("device=cuda", "device"),
    ("offline_ratio=1.5", "offline_ratio"),
    ("task=cartpole-balanse", "cartpole-balance"),
    ("model_size=3", "model_size"),
    ("task=pendulum-swingup", "belongs to another run"),
    ("chunk_len=128", "belongs to another run"),
    ("num_runners=0", "offline_data"),
    ("only_tasks=cartpole-swingup", "only_tasks"),
]


@pytest.mark.parametrize("override, named", CLI_CASES)
def test_a_bad_override_is_refused_with_status_2_and_writes_nothing(existing_run, override, named, capsys):
    """The entry point's own code path (launch.common.main), in this process: one subprocess per
    case would spend most of the test importing torch and MuJoCo."""
    from launch.common import main

    before = _snapshot(existing_run)
    with pytest.raises(SystemExit) as exit_info:
        main("train", [*QUICK, f"run_dir={existing_run}", override])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert named in err and len(err.strip().splitlines()) == 1, err
    assert _snapshot(existing_run) == before


@pytest.mark.parametrize(
    "override, named", [("steps=abc", "steps"), ("task=pendulum-swingup", "belongs to another run")]
)
def test_the_command_line_prints_one_line_and_exits_2(existing_run, override, named):
    before = _snapshot(existing_run)
    out = subprocess.run(
        [sys.executable, str(REPO / "launch/train.py"), *QUICK, f"run_dir={existing_run}", override],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert named in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert _snapshot(existing_run) == before


def test_the_ray_job_is_refused_the_same_way_before_ray_starts(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "launch/mt80.py"), "preset=smoke", "envs_per_task=0", f"run_dir={tmp_path}/run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "envs_per_task" in out.stderr and "ray:" not in out.stdout
    assert not (tmp_path / "run").exists()


def test_presets_never_share_a_default_run_directory():
    cpu = ["device=cpu", "runner_device=cpu", "precision=fp32"]  # the cluster preset asks for GPUs
    dirs = {p: compose("mt80", [f"preset={p}"] + cpu).run_dir for p in ("smoke", "laptop", "reference", "cluster")}
    assert len(set(dirs.values())) == 4, dirs


def test_a_checkpoint_of_another_layout_is_named_as_such(tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose("train", QUICK + ["steps=10", f"run_dir={run_dir}"])
    run_dir.mkdir()
    torch.save({"_Qs.params.0.weight": torch.zeros(2)}, run_dir / "checkpoint.pt")  # e.g. a TD-MPC2 file
    with pytest.raises(ConfigError, match="not made by this version|another layout"):
        Loop(cfg).start()
    from agents.checkpoint import load_checkpoint

    with pytest.raises(ValueError, match="another layout.*import_checkpoint"):
        load_checkpoint(run_dir)


def test_an_offline_store_of_another_task_order_is_refused_by_name(tmp_path):
    from distributed.episodes import EpisodeBuilder
    from distributed.replay.writer import ShardWriter
    from envs import load_task_set

    ts = load_task_set("cartpole-balance,cartpole-swingup")
    with ShardWriter(
        tmp_path / "data",
        obs_dim=ts.max_obs_dim,
        action_dim=ts.max_action_dim,
        chunk_len=64,
        task_names=["cartpole-swingup", "cartpole-balance"],
    ) as w:  # the other order
        for task in (0, 1):
            b = EpisodeBuilder(task, ts.max_obs_dim, ts.max_action_dim)
            b.start(torch.zeros(ts.max_obs_dim).numpy())
            for t in range(10):
                b.add(torch.zeros(ts.max_action_dim).numpy(), torch.zeros(ts.max_obs_dim).numpy(), 0.0, False, t == 9)
            e = b.finish()
            w.add_episode(e["obs"], e["action"], e["reward"], e["terminated"], e["truncated"], task)
    cfg = compose(
        "train",
        QUICK
        + [
            "task='cartpole-balance,cartpole-swingup'",
            "num_runners=0",
            f"offline_data={tmp_path}/data",
            "steps=5",
            f"run_dir={tmp_path}/run",
        ],
    )
    with pytest.raises(ConfigError, match="id 0: 'cartpole-swingup' there, 'cartpole-balance' here"):
        Loop(cfg)
    assert not (tmp_path / "run").exists()


def test_a_job_that_dies_says_so_in_one_line_and_keeps_the_traceback_in_the_run_directory(tmp_path):
    # a real failure mid-run: the weights file's path is taken by a directory, so the first checkpoint's
    # write fails (IsADirectoryError) after the job has collected and trained
    run_dir = tmp_path / "run"
    (run_dir / "model.safetensors").mkdir(parents=True)
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "launch" / "train.py"),
            *QUICK,
            "steps=60",
            "seed_steps=20",
            "utd=0.5",
            "checkpoint_freq=40",
            "eval_freq=1000",
            f"run_dir={run_dir}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 1, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if "the job failed" in ln]
    assert len(lines) == 1 and "IsADirectoryError" in lines[0] and "errors.log" in lines[0]
    assert "Traceback" not in out.stderr + out.stdout and "\x1b[" not in out.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["failed"] in lines[0] and summary["env_steps"] >= 40
    log = (run_dir / "errors.log").read_text()
    assert "Traceback" in log and "IsADirectoryError" in log


# what the shell passes on when `task='cartpole-swingup,walker-walk@leg=1.25'` is typed: its quotes are gone
UNQUOTED_TASKS = "task=cartpole-swingup,walker-walk@leg=1.25"


@pytest.mark.parametrize("launcher", ["train.py", "mt80.py", "baseline.py"])  # launch.common's main and options
def test_an_unquoted_task_list_is_refused_with_the_quoted_form(launcher, tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "launch" / launcher), UNQUOTED_TASKS, f"run_dir={tmp_path}/run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith(f"error: Hydra cannot read the override {UNQUOTED_TASKS} "), out.stderr
    assert "write \"task='cartpole-swingup,walker-walk@leg=1.25'\" (" in out.stderr, out.stderr
    assert not (tmp_path / "run").exists()


def test_the_quoted_form_shown_is_what_the_launchers_read():
    import shlex

    from envs import load_task_set
    from launch.common import unreadable_override

    message = unreadable_override(["steps=10", UNQUOTED_TASKS])
    (arg,) = shlex.split(message.split(" write ", 1)[1].split(" (the inner", 1)[0])  # as the shell passes it on
    assert arg == "task='cartpole-swingup,walker-walk@leg=1.25'" and unreadable_override([arg]) is None
    for config in ("train", "mt80", "mt30"):
        assert compose(config, [arg]).task == "cartpole-swingup,walker-walk@leg=1.25"
    assert load_task_set("cartpole-swingup,walker-walk@leg=1.25").names == ("cartpole-swingup", "walker-walk@leg=1.25")
    # an override that is not a quoting matter keeps Hydra's own message
    assert unreadable_override(["steps=abc", "task=[a,b", "foo"]) is None
