"""Zero-shot / few-shot transfer end to end on a small split run: training data never holds a
held-out body, the experiment writes its table, and bad requests fail before any run."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distributed.config import ConfigError, compose_options, config_from_dict
from distributed.loop import run
from distributed.run_log import read_metrics
from distributed.transfer import (
    PlannerOverrides,
    TransferConfig,
    TransferExperiment,
    check_held_out_unseen,
    stored_task_ids,
)

REPO = Path(__file__).resolve().parents[2]
SPLIT = "cartpole-length"
SMALL_PLANNER = dict(num_samples=32, num_elites=4, num_pi_trajs=4, iterations=2)


def _train(run_dir, conditioning, **kw):
    cfg = config_from_dict(
        {
            **dict(
                task=f"split:{SPLIT}",
                model_size="tiny",
                steps=2600,
                seed_steps=2500,
                utd=0.05,
                batch_size=16,
                eval_freq=2600,
                eval_episodes=1,
                eval_max_steps=10,
                diagnostics=False,
                run_dir=str(run_dir),
                wandb_mode="disabled",
                progress=False,
                planner=SMALL_PLANNER,
                model={"task_conditioning": conditioning},
            ),
            **kw,
        }
    )
    return run(cfg)


@pytest.fixture(scope="module")
def both_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("transfer") / "both"
    _train(run_dir, "both")
    return run_dir


def _config(run_dir, out, **kw):
    base = dict(
        checkpoint=str(run_dir),
        split=SPLIT,
        out_dir=str(out),
        held_out=["cartpole-swingup@length=1.7"],
        episodes=1,
        eval_max_steps=10,
        finetune_steps=0,
        planner=PlannerOverrides(**SMALL_PLANNER),
        wandb_mode="disabled",
        progress=False,
    )
    return TransferConfig(**{**base, **kw})


def test_held_out_bodies_never_reach_the_replay_store(both_run):
    from distributed.replay.reader import ShardReader
    from embodiments import load_split

    split = load_split(SPLIT)
    trained = json.loads((both_run / "run.json").read_text())["tasks"]
    assert list(trained) == list(split.train)
    ids = set().union(*stored_task_ids(both_run).values())
    assert ids == set(range(len(split.train)))  # every training body collected, nothing else
    reader = ShardReader(both_run / "replay" / "shard-000")
    rows = reader.sample(256, 1, np.random.default_rng(0))
    assert not {trained[int(t)] for t in rows["task"]} & set(split.held_out)
    assert check_held_out_unseen(trained, list(split.held_out), both_run)["task_ids"] == sorted(ids)


def test_the_leak_check_catches_held_out_data(both_run, tmp_path):
    from distributed.replay.writer import ShardWriter
    from embodiments import load_split

    split = load_split(SPLIT)
    trained = list(split.train)
    with pytest.raises(ValueError, match="were training tasks"):
        check_held_out_unseen(trained + [split.held_out[0]], list(split.held_out), None)
    leaky = tmp_path / "leaky"
    shutil.copytree(both_run, leaky)
    with ShardWriter(leaky / "replay" / "shard-001", obs_dim=5, action_dim=1, chunk_len=8) as w:
        w.add_episode(
            np.zeros((3, 5), np.float32),
            np.zeros((3, 1), np.float32),
            np.zeros(3, np.float32),
            np.zeros(3, bool),
            np.array([False, False, True]),
            len(trained),
        )  # the first held-out id
    with pytest.raises(ValueError, match="outside the checkpoint's 5 training tasks"):
        check_held_out_unseen(trained, list(split.held_out), leaky)
    with pytest.raises(ValueError, match="outside"):
        TransferExperiment(_config(leaky, tmp_path / "out"))


def test_transfer_table_zero_shot_few_shot_scratch_random(both_run, tmp_path):
    out = tmp_path / "out"
    cfg = _config(
        both_run,
        out,
        finetune_steps=520,
        finetune_params=["task_embedding"],
        scratch_seed_steps=500,
        finetune_inits=["descriptor"],
        finetune_evals=[260],
    )
    exp = TransferExperiment(cfg)
    assert exp.zero_shot_inits == ["descriptor", "nearest", "mean"]
    assert [exp.trained[i] for i in exp.nearest] == ["cartpole-swingup@length=1.4"]
    (row,) = exp.run()
    assert row["task"] == "cartpole-swingup@length=1.7"
    assert row["nearest_training_task"] == "cartpole-swingup@length=1.4"
    for key in (
        "zero_shot_descriptor",
        "zero_shot_nearest",
        "zero_shot_mean",
        "random_return",
        "in_distribution_return",
        "finetune_descriptor_K",
        "scratch_K",
        "finetune_descriptor_K260",
        "finetune_descriptor_K520",
        "scratch_K260",
        "scratch_K520",
    ):
        assert np.isfinite(row[key]), key
    assert row["finetune_descriptor_K520"] == row["finetune_descriptor_K"] and row["scratch_K520"] == row["scratch_K"]
    # one run per init reaches every K: it was evaluated at K = 260 and at 520, and the K=260 column is the former
    ft_run = out / "finetune" / "descriptor" / "cartpole-swingup_length1.7"
    evals = {r["step"]: r["episode_return"] for r in read_metrics(ft_run, "eval")}
    assert sorted(evals) == [260, 520], evals
    assert row["finetune_descriptor_K260"] == pytest.approx(evals[260])
    assert row["transfer_ratio_nearest"] == pytest.approx(row["zero_shot_nearest"] / row["in_distribution_return"])
    with open(out / "transfer.csv") as f:
        (saved,) = list(csv.DictReader(f))
    assert float(saved["zero_shot_descriptor"]) == pytest.approx(row["zero_shot_descriptor"])
    md = (out / "transfer.md").read_text()
    assert "cartpole-swingup@length=1.7" in md and "Mean transfer ratio" in md
    assert (out / "transfer.png").stat().st_size > 0
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["kind"] == "transfer"
    # the finetune collected the held-out body only, under its new id (after the 5 training tasks)
    assert set().union(*stored_task_ids(out / "finetune" / "descriptor" / "cartpole-swingup_length1.7").values()) == {5}
    # the same command again into the same out_dir: the finished finetune and scratch runs are resumed
    # (nothing left to train), the table is written again with the same finetune return
    (again,) = TransferExperiment(cfg).run()
    assert again["finetune_descriptor_K"] == pytest.approx(row["finetune_descriptor_K"])
    assert again["scratch_K"] == pytest.approx(row["scratch_K"])


def test_bad_transfer_requests_fail_before_running(both_run, tmp_path):
    with pytest.raises(ValueError, match="not held-out tasks"):
        TransferExperiment(_config(both_run, tmp_path, held_out=["cartpole-swingup@length=1.2"]))
    with pytest.raises(ValueError, match="unknown parameter groups"):
        TransferExperiment(_config(both_run, tmp_path, finetune_steps=10, finetune_params=["heads"]))
    with pytest.raises(LookupError, match="closest: cartpole-length"):
        TransferExperiment(_config(both_run, tmp_path, split="cartpole-lenght"))
    with pytest.raises(ValueError, match="finetune_evals"):
        _config(both_run, tmp_path, finetune_steps=100, finetune_evals=[100, 200])
    with pytest.raises(ValueError, match="num_pi_trajs"):  # planner overrides are checked against the checkpoint's
        TransferExperiment(_config(both_run, tmp_path, planner=PlannerOverrides(num_samples=4)))


def test_the_command_fails_at_once_on_a_bad_override_naming_the_key(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "launch" / "transfer.py"),
            f"checkpoint={tmp_path}/run",
            f"split={SPLIT}",
            "episodes=many",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "episodes" in out.stderr and "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written
    for bad, key in [
        ("planner.num_sample=8", "planner.num_sample"),
        ("finetune_inits=[desc]", "finetune_inits"),
        ("held_out=a", "held_out"),
    ]:
        with pytest.raises(ConfigError, match=key):
            compose_options(TransferConfig, ["checkpoint=x", f"split={SPLIT}", bad])
    cfg = compose_options(TransferConfig, ["checkpoint=runs/x", f"split={SPLIT}", "planner.num_samples=64"])
    assert cfg.out_dir == "runs/x/transfer" and cfg.planner.num_samples == 64 and cfg.planner.horizon is None


def test_a_table_model_offers_nearest_and_mean_only(tmp_path):
    run_dir = tmp_path / "table"
    _train(
        run_dir, "table", steps=120, seed_steps=100, max_episode_steps=20, eval_freq=120
    )  # a checkpoint is all it needs
    with pytest.raises(ValueError, match=r"finetune_inits \['descriptor'\] are not available"):
        TransferExperiment(_config(run_dir, tmp_path / "out", finetune_inits=["descriptor"]))
    exp = TransferExperiment(_config(run_dir, tmp_path / "out", finetune_inits=["nearest"]))
    assert exp.zero_shot_inits == ["nearest", "mean"]


@pytest.mark.ray
def test_distributed_job_on_a_split_with_descriptor_conditioning(ray_session, tmp_path):
    """The Ray job trains a descriptor-conditioned model on a split's training bodies with two learner
    ranks: replicas stay identical (no in-place embedding renorm) and held-out ids never reach replay."""
    from agents.checkpoint import load_checkpoint
    from distributed.testing.jobs import compose_run_config, run_job, store_episodes

    summary, digests = run_job(
        compose_run_config(
            [
                "preset=smoke",
                f"task=split:{SPLIT}",
                f"run_dir={tmp_path}/run",
                "num_learners=2",
                "model.task_conditioning=both",
                "steps=800",
                "seed_steps=300",
            ]
        )
    )
    assert summary["updates"] > 0
    assert len(set(digests)) == 1, "learner ranks hold different parameters"
    assert {task for task, _ in store_episodes(tmp_path / "run").values()} == set(range(5))
    model = load_checkpoint(tmp_path / "run")["agent"]["config"]["model"]
    assert model["task_conditioning"] == "both" and len(model["task_descriptors"]) == 5
    exp = TransferExperiment(_config(tmp_path / "run", tmp_path / "out"))
    assert exp.leak_check["shards"] >= 1 and exp.leak_check["task_ids"] == [0, 1, 2, 3, 4]
