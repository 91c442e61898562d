"""Each RLlib baseline trains a few iterations on a dm_control task and is scored by our evaluator
into our run-directory layout; the evaluation protocol is the same one our agent gets."""

import csv
import dataclasses
import json

import numpy as np
import pytest

from distributed.baselines.run import BaselineConfig, BaselineRun
from distributed.evaluator import evaluate_policy
from distributed.run_log import read_metrics
from envs import load_task_set, make_padded_env

TASK = "cartpole-swingup"
# tiny networks, short episodes, small batches: seconds per algorithm on 2 cores
TINY = {
    "sac": dict(
        training={"train_batch_size_per_learner": 16, "num_steps_sampled_before_learning_starts": 40},
        model={"fcnet_hiddens": [16], "head_fcnet_hiddens": [16]},
    ),
    "ppo": dict(
        training={"train_batch_size_per_learner": 60, "minibatch_size": 30, "num_epochs": 1},
        model={"fcnet_hiddens": [16]},
    ),
    "dreamerv3": dict(training={"model_size": "nano", "training_ratio": 16, "batch_size_B": 2, "batch_length_T": 8}),
}
STEPS = {"sac": 120, "ppo": 120, "dreamerv3": 24}


def _config(tmp_path, algo, task=TASK, **extra):
    return BaselineConfig(
        algo=algo,
        task=task,
        steps=STEPS[algo],
        seed=2,
        eval_freq=STEPS[algo] // 2,
        eval_episodes=2,
        eval_max_steps=15,
        max_episode_steps=30,
        run_dir=str(tmp_path / f"{algo}-run"),
        wandb_mode="disabled",
        progress=False,
        checkpoint=False,
        **TINY[algo],
        **extra,
    )


def test_the_evaluation_protocol_is_ours_seeds_episodes_and_scores():
    """evaluate_policy runs env k of a task from make_padded_env(seed * 7919 + k), reset with the
    same seed, and scores dm_control returns / 10: a manual rollout gives the same numbers."""
    ts = load_task_set("cartpole-swingup,reacher-easy")
    act = lambda obs, task_ids, rows: np.full((len(rows), ts.max_action_dim), 0.3, np.float32)  # noqa: E731
    result = evaluate_policy(act, ts, episodes=2, seed=5, max_steps=12)
    for name in ts.names:
        returns = []
        for k in range(2):
            env = make_padded_env(ts, name, seed=5 * 7919 + k)
            env.reset(seed=5 * 7919 + k)
            returns.append(sum(env.step(np.full(ts.max_action_dim, 0.3, np.float32))[1] for _ in range(12)))
        assert result["tasks"][name]["return"] == pytest.approx(np.mean(returns))
        assert result["tasks"][name]["episodes"] == 2 and result["tasks"][name]["length"] == 12
    assert result["normalized_score"] == pytest.approx(np.mean([r["return"] / 10 for r in result["tasks"].values()]))
    assert result["plan_calls"] == 12


@pytest.mark.ray
@pytest.mark.parametrize("algo", ["sac", "ppo", "dreamerv3"])
def test_each_baseline_trains_and_writes_our_eval_rows(tmp_path, ray_session, algo):
    cfg = _config(tmp_path, algo)
    run = BaselineRun(cfg)
    try:
        summary = run.train()
        again = run.evaluate()  # the deterministic policy on the same episodes: the same numbers
    finally:
        run.close()
    run_dir = tmp_path / f"{algo}-run"
    evals = read_metrics(run_dir, "eval")
    assert len(evals) >= 2 and evals[-2]["step"] >= STEPS[algo] and summary["env_steps"] == evals[-2]["step"]
    row = evals[0]
    # the shape of our trainer's eval row (distributed.evaluator.eval_row), plus RLlib's iteration count
    assert set(row) == {
        "kind",
        "step",
        "time",
        "episode_return",
        "iterations",
        "latency_p50_ms",
        "latency_p99_ms",
        f"return/{TASK}",
        f"success/{TASK}",
        "normalized_score",
    }
    assert row["normalized_score"] == pytest.approx(row[f"return/{TASK}"] / 10)
    assert 0 <= row[f"return/{TASK}"] <= 15 * 2  # 15 capped steps, reward <= 1 per physics step x action repeat 2
    assert evals[-1][f"return/{TASK}"] == evals[-2][f"return/{TASK}"] == again["tasks"][TASK]["return"]
    assert again["tasks"][TASK]["episodes"] == 2 and again["tasks"][TASK]["length"] == 15
    train = read_metrics(run_dir, "train")
    assert train and all(r["step"] > 0 for r in train) and any(k.startswith("learner/") for k in train[-1])
    assert [r["step"] for r in train] == sorted(r["step"] for r in train)
    with open(run_dir / "eval.csv") as f:
        table = list(csv.DictReader(f))
    assert [t["task"] for t in table] == [TASK] and table[0]["episodes"] == "2"
    assert "latency per step" in (run_dir / "eval.md").read_text()
    assert (run_dir / "learning_curve.png").stat().st_size > 0
    assert json.loads((run_dir / "run.json").read_text())["algo"] == algo
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == summary["env_steps"]
    assert (run_dir / "config.yaml").exists() and (run_dir / "rllib_config.json").exists()
    with pytest.raises(ValueError, match="already holds a run"):
        BaselineRun(cfg)


@pytest.mark.ray
def test_sac_is_evaluated_with_its_squashed_mean_not_rllibs_pre_tanh_mean(tmp_path, ray_session):
    import torch
    from ray.rllib.core.columns import Columns

    from distributed.baselines.algos import policy_fn

    run = BaselineRun(_config(tmp_path, "sac"))
    try:
        module = run.algo.get_module()
        obs = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
        act = policy_fn(module, "sac", run.task_set, one_hot=False, num_rows=4)(
            obs, np.zeros(4, np.int64), [0, 1, 2, 3]
        )
        with torch.no_grad():
            logits = module.forward_inference({Columns.OBS: torch.from_numpy(obs)})[Columns.ACTION_DIST_INPUTS]
        mean = logits[:, :1].numpy()  # [loc | log_std]
        np.testing.assert_allclose(act, np.tanh(mean), rtol=1e-5, atol=1e-6)
        assert not np.allclose(act, np.clip(mean, -1, 1), rtol=1e-5, atol=1e-6)  # the two really differ here
    finally:
        run.close()


@pytest.mark.ray
def test_ppo_takes_a_task_set_with_padding_and_a_task_one_hot(tmp_path, ray_session):
    cfg = _config(tmp_path, "ppo", task="cartpole-swingup,reacher-easy")
    run = BaselineRun(cfg)
    try:
        assert run.algo.get_module().observation_space.shape == (6 + 2,)  # max obs dim 6 + 2 task ids
        run.train()
    finally:
        run.close()
    row = read_metrics(tmp_path / "ppo-run", "eval")[-1]
    assert {"return/cartpole-swingup", "return/reacher-easy"} <= set(row)
    assert row["normalized_score"] == pytest.approx((row["return/cartpole-swingup"] + row["return/reacher-easy"]) / 20)


@pytest.mark.ray
def test_a_baseline_with_its_run_dir_in_a_bucket_writes_everything_there(tmp_path, ray_session, s3_bucket, monkeypatch):
    """The RLlib baseline's run directory on the S3 server: metrics, evaluation, plots, summary and RLlib's
    own checkpoint (written to a local staging folder, then uploaded) land in the bucket, nothing locally."""
    from distributed.storage import storage_path

    monkeypatch.chdir(tmp_path)
    run_dir = f"{s3_bucket}/sac-run"
    cfg = dataclasses.replace(_config(tmp_path, "sac"), run_dir=run_dir, checkpoint=True)
    run = BaselineRun(cfg)
    try:
        summary = run.train()
    finally:
        run.close()
    root = storage_path(run_dir)
    for name in (
        "run.json",
        "config.yaml",
        "rllib_config.json",
        "metrics.jsonl",
        "eval.md",
        "eval.csv",
        "learning_curve.png",
        "summary.json",
    ):
        assert (root / name).exists(), name
    assert json.loads((root / "summary.json").read_text())["env_steps"] == summary["env_steps"]
    assert len(read_metrics(root, "eval")) >= 2
    ckpt = [p.name for p in (root / "rllib_checkpoint").iterdir()]
    assert ckpt, "RLlib's checkpoint was not uploaded"
    assert list(tmp_path.iterdir()) == []  # no runs/, no folder named 's3:'
    with pytest.raises(ValueError, match="already holds a run"):
        BaselineRun(cfg)
