"""The distributed job learning from an offline store (TD-MPC2's mt80 setting) and mixing it
with online collection."""

import json

import numpy as np
import pytest
import ray

from distributed.config import ConfigError
from distributed.loop import Loop
from distributed.testing.jobs import compose_run_config, write_random_store

pytestmark = pytest.mark.ray
TASKS = "'cartpole-balance,mw-reach'"


def test_offline_run_learns_from_a_store_without_env_runners(ray_session, tmp_path):
    write_random_store(tmp_path / "data" / "shard-000")
    cfg = compose_run_config(
        [
            "preset=smoke",
            f"task={TASKS}",
            "num_runners=0",
            f"offline_data={tmp_path}/data",
            "steps=60",
            "checkpoint_freq=30",
            f"run_dir={tmp_path}/run",
        ]
    )
    co = Loop(cfg)
    try:
        summary = co.run()
    finally:
        co.shutdown()
    assert summary["updates"] == 60 and summary["env_steps"] == 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["reward_loss"] for r in rows if r["kind"] == "train"]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert (tmp_path / "run" / "checkpoint.pt").exists() and (tmp_path / "run" / "eval.md").exists()


def test_mixed_batches_take_the_configured_share_from_the_offline_store(ray_session, tmp_path):
    from distributed.actors import actor_classes
    from distributed.batches import Mixture, ShardActorSource, StoreSource

    ts = write_random_store(tmp_path / "online", tasks=(0,))
    write_random_store(tmp_path / "offline", tasks=(1,))
    masks = ts.action_masks()
    online = actor_classes()["shard"].remote(
        str(tmp_path / "online"), obs_dim=ts.max_obs_dim, action_dim=ts.max_action_dim
    )
    try:
        source = Mixture(
            ShardActorSource([online], masks), StoreSource(tmp_path / "offline", masks, ts.max_obs_dim), 0.25
        )
        rng = np.random.default_rng(0)
        for _ in range(3):
            batch = source.sample(40, 3, rng)
            assert batch["obs"].shape == (4, 40, ts.max_obs_dim)
            assert (batch["task"] == 1).sum() == 10  # exactly a quarter from the offline store
            assert (batch["action_mask"][batch["task"] == 0][:, 1:] == 0).all()  # cartpole's padded dims
    finally:
        ray.get(online.close.remote())
        ray.kill(online)


def test_offline_config_errors(ray_session, tmp_path):
    with pytest.raises(ConfigError, match="num_runners=0 means an offline run"):
        Loop(compose_run_config(["preset=smoke", f"task={TASKS}", "num_runners=0", f"run_dir={tmp_path}/a"]))
    with pytest.raises(ConfigError, match="neither a replay shard"):
        Loop(
            compose_run_config(
                [
                    "preset=smoke",
                    f"task={TASKS}",
                    "num_runners=0",
                    f"offline_data={tmp_path}/nothing",
                    f"run_dir={tmp_path}/b",
                ]
            )
        )
    write_random_store(tmp_path / "data" / "shard-000", episodes_per_task=1, steps=5)
    with pytest.raises(ConfigError, match=r"holds obs/action dims \(39, 4\), wider than task set 'cartpole-balance'"):
        Loop(
            compose_run_config(
                [
                    "preset=smoke",
                    "task=cartpole-balance",
                    "num_runners=0",
                    f"offline_data={tmp_path}/data",
                    f"run_dir={tmp_path}/c",
                ]
            )
        )
    with pytest.raises(ConfigError, match=r"holds task ids \[1\]; task set 'mw-reach' has 1 tasks"):
        Loop(
            compose_run_config(
                [
                    "preset=smoke",
                    "task=mw-reach",
                    "num_runners=0",
                    f"offline_data={tmp_path}/data",
                    f"run_dir={tmp_path}/d",
                ]
            )
        )


def test_offline_training_reads_a_read_only_store_shared_by_two_concurrent_jobs(tmp_path):
    """The dataset is opened by readers only: no lock, no recovery writes, so a read-only copy
    serves two training processes at once and is left byte for byte as it was."""
    import hashlib
    import os
    import subprocess
    import sys
    from pathlib import Path

    write_random_store(tmp_path / "data" / "shard-000")
    files = sorted(p for p in (tmp_path / "data").rglob("*") if p.is_file())
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    data = _read_only_view(tmp_path / "data", tmp_path / "ro")
    repo = Path(__file__).resolve().parents[2]
    args = [
        "model_size=tiny",
        f"task={TASKS}",
        "num_runners=0",
        f"offline_data={data}",
        "steps=30",
        "batch_size=16",
        "updates_per_round=10",
        "eval_freq=30",
        "eval_episodes=1",
        "eval_max_steps=5",
        "checkpoint_freq=30",
        "diagnostics=false",
        "wandb_mode=disabled",
        "progress=false",
        "planner.num_samples=16",
        "planner.num_elites=4",
        "planner.num_pi_trajs=4",
        "planner.iterations=1",
    ]
    jobs = [
        subprocess.Popen(
            [sys.executable, str(repo / "launch/train.py"), *args, f"run_dir={tmp_path}/run{i}", f"seed={i + 1}"],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "MUJOCO_GL": "egl"},
        )
        for i in range(2)
    ]
    try:
        outs = [j.communicate(timeout=300) for j in jobs]
    finally:
        _release(tmp_path / "data", data)
    for j, (out, err) in zip(jobs, outs, strict=False):
        assert j.returncode == 0, err[-2000:]
        assert "'updates': 30" in out
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files} == before
    assert sorted(p for p in (tmp_path / "data").rglob("*") if p.is_file()) == files  # no lock or temp file left


def _read_only_view(src, mount_point):
    """`src` made read-only: a read-only bind mount when running as root (root ignores file modes),
    else the files' write bits removed. Returns the path to use."""
    import os
    import stat
    import subprocess

    if os.geteuid() == 0:
        mount_point.mkdir()
        ok = (
            subprocess.run(["mount", "--bind", str(src), str(mount_point)], capture_output=True).returncode == 0
            and subprocess.run(["mount", "-o", "remount,ro,bind", str(mount_point)], capture_output=True).returncode
            == 0
        )
        if ok:
            return mount_point
        subprocess.run(["umount", str(mount_point)], capture_output=True)
        pytest.skip("running as root without permission for a read-only bind mount: cannot make a read-only store")
    for p in sorted(src.rglob("*"), key=lambda p: -len(p.parts)) + [src]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return src


def _release(src, view):
    import stat
    import subprocess

    if view != src:
        subprocess.run(["umount", str(view)], check=True)
        return
    for p in sorted(src.rglob("*")) + [src]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
