"""Transfer and diagnostics with the run in a bucket (the moto S3 server of the s3_bucket fixture): the
commands read the checkpoint and the replay store from the URI and write every output there, nothing
locally; a missing output bucket is one line and exit 2 before anything runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distributed.config import config_from_dict
from distributed.loop import run
from distributed.storage import storage_path

REPO = Path(__file__).resolve().parents[2]
SPLIT = "cartpole-length"
PLANNER = dict(num_samples=16, num_elites=4, num_pi_trajs=4, iterations=1)


def command(args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture
def split_run_in_bucket(s3_bucket):
    """A tiny run on the split's training tasks, its run directory in the bucket (one process)."""
    run_dir = f"{s3_bucket}/split-run"
    run(
        config_from_dict(
            dict(
                task=f"split:{SPLIT}",
                model_size="tiny",
                steps=300,
                seed_steps=250,
                utd=0.05,
                batch_size=16,
                eval_freq=300,
                eval_episodes=1,
                eval_max_steps=5,
                diagnostics=False,
                run_dir=run_dir,
                wandb_mode="disabled",
                progress=False,
                planner=PLANNER,
                max_episode_steps=25,
                model={"task_conditioning": "both"},
            )
        )
    )
    return run_dir


def test_transfer_reads_the_run_from_the_bucket_and_writes_its_outputs_there(split_run_in_bucket, tmp_path):
    run_dir = split_run_in_bucket
    out = f"{run_dir}-transfer"
    res = command(
        [
            str(REPO / "launch/transfer.py"),
            f"checkpoint={run_dir}",
            f"split={SPLIT}",
            f"out_dir={out}",
            "held_out=['cartpole-swingup@length=1.7']",
            "episodes=1",
            "eval_max_steps=5",
            "finetune_steps=30",
            "finetune_seed_steps=25",
            "scratch=false",
            "finetune_params=[task_embedding]",
            *(f"planner.{k}={v}" for k, v in PLANNER.items()),
            "wandb_mode=disabled",
        ],
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    root = storage_path(out)
    for name in ("transfer.md", "transfer.csv", "transfer.json", "transfer.png", "metrics.jsonl"):
        assert (root / name).exists(), name
    saved = json.loads((root / "transfer.json").read_text())
    assert saved["meta"]["replay_check"]["shards"] >= 1  # the leak check read the store in the bucket
    (row,) = saved["rows"]
    assert row["task"] == "cartpole-swingup@length=1.7" and row["finetune_descriptor_K"] is not None
    assert "cartpole-swingup@length=1.7" in (root / "transfer.md").read_text()
    assert (root / "finetune" / "descriptor").is_dir()  # the finetune run lives in the bucket too
    assert "| cartpole-swingup@length=1.7 |" in res.stdout  # the command prints the table it wrote
    assert list(tmp_path.iterdir()) == []  # nothing local: no runs/, no folder named 's3:'


def test_output_to_a_missing_bucket_is_one_line_and_exit_2(split_run_in_bucket, tmp_path):
    res = command(
        [
            str(REPO / "launch/transfer.py"),
            f"checkpoint={split_run_in_bucket}",
            f"split={SPLIT}",
            "out_dir=s3://no-such-bucket-lf/transfer",
            "held_out=['cartpole-swingup@length=1.7']",
            "finetune_steps=0",
            "wandb_mode=disabled",
        ],
        cwd=tmp_path,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert (
        res.stderr.strip()
        .splitlines()[-1]
        .startswith("error: out_dir=s3://no-such-bucket-lf/transfer: bucket 'no-such-bucket-lf' does not exist")
    )
    assert list(tmp_path.iterdir()) == []


def test_diagnose_reads_a_checkpoint_in_the_bucket_and_writes_its_report_there(s3_bucket, tmp_path, monkeypatch):
    import torch

    import envs
    from agents.agent import Agent
    from agents.checkpoint import save_checkpoint
    from agents.config import make_agent_config
    from agents.diagnostics import fit_on_episodes, random_episodes
    from launch.diagnose import main

    ts = envs.load_task_set("cartpole-balance")
    masks = ts.action_masks()
    cfg = make_agent_config(
        obs_dim=ts.max_obs_dim,
        action_dim=ts.max_action_dim,
        episode_lengths=[100],
        model_size="tiny",
        planner=dict(num_samples=16, num_elites=4, num_pi_trajs=4, iterations=1),
    )
    torch.manual_seed(0)
    agent = Agent(cfg, torch.as_tensor(masks))
    eps = {
        "cartpole-balance": random_episodes(
            lambda n, s: envs.make_padded_env(ts, n, s), "cartpole-balance", 0, masks[0], episodes=1, seed=0
        )
    }
    fit_on_episodes(agent, eps, updates=5, batch_size=32)
    ckpt = f"{s3_bucket}/ckpt"
    save_checkpoint(ckpt, agent, extra={"task_set": "cartpole-balance", "tasks": ["cartpole-balance"]})
    monkeypatch.chdir(tmp_path)
    summary = main(
        [
            f"checkpoint={ckpt}",
            "episodes=1",
            "max_steps=30",
            "samples=32",
            "audit_states=2",
            "settings=[h3-i1-n16-fp32]",
            "table_episodes=1",
            "budget_ms=1000",
        ]
    )
    report = storage_path(f"{ckpt}/diagnostics")
    assert str(summary) == str(report / "summary.md")
    for name in ("summary.md", "diagnostics.json", "cka.png", "latency_pareto.png"):
        assert (report / name).exists(), name
    assert "cartpole-balance" in json.loads((report / "diagnostics.json").read_text())["tasks"]
    assert list(tmp_path.iterdir()) == []  # nothing local
