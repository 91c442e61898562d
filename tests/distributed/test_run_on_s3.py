"""Acceptance of object storage, as a user runs it: the commands of the README as subprocesses (each
starts its own embedded Ray, whose actors inherit the AWS_* environment) against the moto S3
server. The bucket holds the whole run and nothing is written locally; the same command with
more steps resumes from the bucket; a sweep in the bucket skips its finished trials; a missing
bucket is one line and exit 2 before anything is written."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distributed.storage import storage_path

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.ray]  # Ray in subprocesses: the Ray stream, before its session


def run(args, cwd, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def store_episode_ids(run_dir: str) -> list[int]:
    from distributed.replay.layout import EPISODE_GROUP, open_group, read_state
    from distributed.replay.verify import verify_shard

    ids = []
    for shard in sorted((storage_path(run_dir) / "replay").glob("shard-*")):
        if shard.name.endswith(".writer.lease"):
            continue
        verify_shard(shard)
        _, c = read_state(shard)
        ids += [int(i) for i in open_group(shard, "r")[EPISODE_GROUP]["id"][c.first_episode : c.episodes]]
    return ids


def test_mt80_smoke_run_lives_in_the_bucket_and_resumes_from_it(s3_bucket, tmp_path):
    run_dir = f"{s3_bucket}/run2"
    cmd = [str(REPO / "launch/mt80.py"), "preset=smoke", "task=cartpole-balance", f"run_dir={run_dir}"]
    first = run([*cmd, "steps=600"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    root = storage_path(run_dir)
    for name in (
        "run.json",
        "config.json",
        "checkpoint.pt",
        "model.safetensors",
        "summary.json",
        "metrics.jsonl",
        "eval.md",
        "eval.csv",
        "learning_curve.png",
    ):
        assert (root / name).exists(), name
    assert json.loads((root / "summary.json").read_text())["env_steps"] == 600
    ids = store_episode_ids(run_dir)
    assert len(ids) == len(set(ids)) == 30  # 600 steps of 20-step episodes, each once
    assert list(tmp_path.iterdir()) == []  # no runs/, no folder named 's3:'

    second = run([*cmd, "steps=1000"], cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resumed {run_dir}: env step 600" in second.stdout
    summary = json.loads((root / "summary.json").read_text())
    assert summary["env_steps"] == 1000 and summary["episodes"] == 50
    more = store_episode_ids(run_dir)
    assert len(more) == len(set(more)) == 50 and set(ids) <= set(more)  # the first run's episodes kept, none twice
    assert list(tmp_path.iterdir()) == []


def test_a_missing_bucket_is_one_line_and_exit_2_before_anything_is_written(s3_bucket, tmp_path):
    out = run(
        [str(REPO / "launch/mt80.py"), "preset=smoke", "run_dir=s3://no-such-bucket-lf/run"], cwd=tmp_path, timeout=120
    )
    assert out.returncode == 2
    assert (
        out.stderr.strip()
        .splitlines()[-1]
        .startswith("error: run_dir=s3://no-such-bucket-lf/run: bucket 'no-such-bucket-lf' does not exist")
    )
    assert "Traceback" not in out.stderr and list(tmp_path.iterdir()) == []


TINY = [
    "task=cartpole-balance",
    "model_size=tiny",
    "steps=300",
    "seed_steps=250",
    "utd=0.1",
    "batch_size=32",
    "eval_freq=300",
    "eval_episodes=1",
    "eval_max_steps=30",
    "checkpoint_freq=300",
    "planner.num_samples=16",
    "planner.num_elites=4",
    "planner.num_pi_trajs=4",
    "planner.iterations=1",
]


def test_a_sweep_in_the_bucket_resumes_and_skips_finished_trials(s3_bucket, tmp_path):
    base = "base=[" + ",".join(f'"{o}"' for o in TINY) + "]"
    cmd = [
        str(REPO / "launch/sweep.py"),
        "name=tiny",
        f"storage={s3_bucket}/sweeps",
        base,
        "seeds=[1,2]",
        "cpus_per_trial=1",
        "wandb_mode=disabled",
        "max_failures=0",
    ]
    first = run(cmd, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "trained now: 2, already done: 0, errors: 0" in first.stdout
    sweep = storage_path(f"{s3_bucket}/sweeps/tiny")
    runs = sorted(p for p in (sweep / "runs").iterdir())
    assert len(runs) == 2 and all((p / "done.json").exists() for p in runs)
    kept = (runs[1] / "metrics.jsonl").read_bytes()
    (runs[0] / "done.json").unlink()  # as if its job was killed before the trial finished
    second = run(cmd, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "trained now: 1, already done: 1, errors: 0" in second.stdout
    assert (runs[1] / "metrics.jsonl").read_bytes() == kept  # the finished trial was not touched
    assert len((runs[0] / "attempts.jsonl").read_text().splitlines()) == 2
    assert (sweep / "results.md").read_text().count("| done |") == 2
    assert list(tmp_path.iterdir()) == []


def test_one_process_run_on_s3_and_offline_training_reading_its_store_from_the_bucket(s3_bucket, tmp_path):
    """backend=local (launch/train.py) writes its run to the bucket too; a later offline run reads that
    replay store from the URI, read-only, and writes its own run locally."""
    online = f"{s3_bucket}/online"
    quick = [
        "task=cartpole-balance",
        "model_size=tiny",
        "batch_size=16",
        "planner.num_samples=16",
        "planner.iterations=1",
        "planner.num_elites=4",
        "planner.num_pi_trajs=4",
        "eval_episodes=1",
        "eval_max_steps=5",
        "diagnostics=false",
        "wandb_mode=disabled",
        "progress=false",
        "max_episode_steps=20",
    ]
    first = run(
        [str(REPO / "launch/train.py"), *quick, "steps=300", "seed_steps=200", "utd=0.1", f"run_dir={online}"],
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads((storage_path(online) / "summary.json").read_text())["updates"] > 0
    ids = store_episode_ids(online)
    assert len(ids) == len(set(ids)) > 0
    assert list(tmp_path.iterdir()) == []
    objects_before = sorted(storage_path(online).fs.find(storage_path(online).path))
    offline = run(
        [
            str(REPO / "launch/train.py"),
            *quick,
            "num_runners=0",
            f"offline_data={online}/replay",
            "steps=20",
            "eval_freq=20",
            f"run_dir={tmp_path}/offline",
        ],
        cwd=tmp_path,
    )
    assert offline.returncode == 0, offline.stderr[-3000:]
    assert json.loads((tmp_path / "offline" / "summary.json").read_text())["updates"] == 20
    assert sorted(storage_path(online).fs.find(storage_path(online).path)) == objects_before  # read-only
