"""The one loop: every mode writes the same artifacts, resume is exact in one process, and a bad
command line fails at once, before Ray starts or anything is written."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distributed.config import compose, config_from_dict
from distributed.loop import Loop, run
from distributed.run_log import read_metrics
from distributed.testing.jobs import TINY_RUN, write_random_store

REPO = Path(__file__).resolve().parents[2]
PAIR = "cartpole-balance,mw-reach"
SMALL = [
    *[o for o in TINY_RUN if o != "diagnostics=false"],
    "diag_samples_per_task=4",
    "diag_audit_states=1",
    f"task='{PAIR}'",
]
ARTIFACTS = {
    "checkpoint.pt",
    "model.safetensors",
    "metrics.jsonl",
    "eval.md",
    "eval.csv",
    "learning_curve.png",
    "eval_tasks.png",
    "run.json",
    "config.json",
    "summary.json",
}


def _artifacts(run_dir: Path) -> tuple[set, list]:
    files = {p.name for p in run_dir.iterdir() if p.is_file() and not p.name.startswith(".")}
    evals = read_metrics(run_dir, "eval")
    assert evals, f"{run_dir} has no eval row"
    return files, sorted({k for row in evals for k in row})


def _local_modes(tmp_path) -> dict[str, list[str]]:
    data = f"offline_data={tmp_path}/data"
    online = ["steps=240", "seed_steps=200", "utd=0.1", "max_episode_steps=40", "eval_freq=120", "checkpoint_freq=120"]
    return {
        "local": online,
        "local-offline": [
            "num_runners=0",
            data,
            "steps=20",
            "updates_per_round=10",
            "eval_freq=10",
            "checkpoint_freq=10",
        ],
        "local-mixed": online + [data, "offline_ratio=0.5"],
    }


@pytest.mark.slow
@pytest.mark.ray
def test_every_mode_writes_the_same_artifacts_and_eval_keys(ray_session, tmp_path):
    write_random_store(tmp_path / "data" / "shard-000", episodes_per_task=2, steps=30)
    results = {}
    for name, args in _local_modes(tmp_path).items():
        summary = run(compose("train", SMALL + args + [f"run_dir={tmp_path / name}"]))
        assert summary["updates"] > 0 and summary["failures"] == []
        results[name] = _artifacts(tmp_path / name)
    ray_modes = {
        "ray": [
            "num_runners=1",
            "steps=240",
            "seed_steps=200",
            "utd=0.1",
            "max_episode_steps=40",
            "eval_freq=120",
            "checkpoint_freq=120",
        ],
        "ray-offline": [
            "num_runners=0",
            f"offline_data={tmp_path}/data",
            "steps=20",
            "updates_per_round=10",
            "eval_freq=10",
            "checkpoint_freq=10",
        ],
    }
    for name, args in ray_modes.items():
        cfg = compose("mt80", ["preset=smoke"] + SMALL + args + [f"run_dir={tmp_path / name}"])
        summary = run(cfg)
        assert summary["updates"] > 0 and summary["failures"] == []
        results[name] = _artifacts(tmp_path / name)
    for name, (files, keys) in results.items():
        assert ARTIFACTS <= files, f"{name} lacks {ARTIFACTS - files}"
        assert keys == results["local"][1], f"{name}'s eval rows differ: {set(keys) ^ set(results['local'][1])}"
    assert {"return/cartpole-balance", "return/mw-reach", "normalized_score", "latency_p50_ms"} <= set(
        results["local"][1]
    )
    # a learning curve with more than one point, in every mode
    for name in results:
        assert len(read_metrics(tmp_path / name, "eval")) >= 2, name


def _train_rows(run_dir: Path) -> dict[int, dict]:
    return {r["updates"]: r for r in read_metrics(run_dir, "train")}


def test_resume_in_one_process_gives_the_same_next_updates_as_an_uninterrupted_run(tmp_path):
    # 50-step episodes end at 50, 100, 150, ... in the uninterrupted run; the run stopped at 120 resumes with a
    # fresh episode that ends at 170, so up to update 140 both runs sample the same stored episodes
    base = SMALL[:-1] + [
        "task=cartpole-balance",
        "max_episode_steps=50",
        "seed_steps=100",
        "utd=1",
        "batch_size=32",
        "eval_freq=100000",
        "checkpoint_freq=120",
        "diagnostics=false",
    ]
    run(compose("train", base + ["steps=140", f"run_dir={tmp_path / 'straight'}"]))
    run(compose("train", base + ["steps=120", f"run_dir={tmp_path / 'resumed'}"]))
    from distributed.replay.reader import ShardReader

    shard = tmp_path / "resumed" / "replay" / "shard-000"
    assert ShardReader(shard).num_episodes == 2  # two episodes finished; the partial third is not stored
    loop = Loop(compose("train", base + ["steps=170", f"run_dir={tmp_path / 'resumed'}"]))
    try:
        loop.start()
        assert loop.env_steps == 120 and loop.updates == 120
        summary = loop.run()
    finally:
        loop.shutdown()
    assert summary["env_steps"] == 170 and summary["updates"] == 170
    reader = ShardReader(shard)  # the resumed run's first episode, stored once; nothing duplicated
    assert reader.num_episodes == 3 and reader.num_transitions == 150
    straight, resumed = _train_rows(tmp_path / "straight"), _train_rows(tmp_path / "resumed")
    after = [u for u in sorted(resumed) if 120 < u <= 140]
    assert after and after[-1] == 140
    keys = ("consistency_loss", "reward_loss", "value_loss", "pi_loss", "total_loss")
    for u in after:
        assert {k: resumed[u][k] for k in keys} == {k: straight[u][k] for k in keys}, f"update {u} differs"


def _cli(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / script), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "bad, key",
    [
        ("steps=abc", "steps"),
        ("planner.num_samples=many", "planner.num_samples"),
        ("stepz=3", "stepz"),
        ("eval_freq=0", "eval_freq"),
        ("seed=-1", "seed"),
        ("num_learners=0", "num_learners"),
        ("device=cuda", "device=cuda"),
    ],
)
def test_a_bad_override_fails_at_once_naming_the_key_before_ray_starts(tmp_path, bad, key):
    out = _cli("launch/mt80.py", "preset=smoke", f"run_dir={tmp_path}/run", bad, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert key in out.stderr and "Traceback" not in out.stderr
    assert "ray:" not in out.stdout  # Ray never started
    assert not (tmp_path / "run").exists()  # nothing written


def test_config_tree_is_typed_and_built_once():
    cfg = compose("mt80", ["preset=laptop", "planner.num_samples=128"])
    assert cfg.planner.num_samples == 128 and cfg.planner.iterations == 2  # preset, then command line
    assert cfg.run_dir != compose("mt80", ["preset=smoke"]).run_dir  # presets never share a run directory
    again = config_from_dict(cfg.to_dict())
    assert again == cfg
    from distributed.config import build_agent_config
    from envs import load_task_set

    agent_cfg = build_agent_config(cfg, load_task_set("cartpole-balance"))
    assert agent_cfg.planner.num_samples == 128 and agent_cfg.planner.horizon == cfg.planner.horizon
    # one home per value: the batch size is the run's (the learner's), the training horizon the planner's
    assert not {"batch_size", "horizon"} & {f.name for f in dataclasses.fields(agent_cfg.optim)}


def test_the_in_process_runner_shares_the_learners_model(tmp_path):
    loop = Loop(
        compose(
            "train", SMALL[:-1] + ["task=cartpole-balance", "steps=10", "seed_steps=5", f"run_dir={tmp_path / 'r'}"]
        )
    )
    try:
        loop.start()
        assert loop.parts.collector.runner.policy.model is loop.parts.agent.model
        assert not hasattr(loop.parts.collector.runner.policy, "optim")  # acts without optimisers
    finally:
        loop.shutdown()
    assert np.isfinite(json.loads((tmp_path / "r" / "run.json").read_text())["obs_dim"])
