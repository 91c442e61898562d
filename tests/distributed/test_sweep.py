"""Sweeps as Ray Tune trials on the embedded Ray: expansion, the results table, resume."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distributed.config import ConfigError, compose_options
from distributed.sweep import SweepConfig, expand_trials

REPO = Path(__file__).resolve().parents[2]

TINY = [
    "task=cartpole-balance",
    "model_size=tiny",
    "steps=600",
    "seed_steps=500",
    "utd=0.1",
    "batch_size=32",
    "eval_freq=300",
    "eval_episodes=1",
    "eval_max_steps=30",
    "checkpoint_freq=300",
    "wandb_mode=disabled",
    "planner.num_elites=4",
    "planner.num_pi_trajs=4",
    "planner.iterations=1",
]


def test_grid_random_and_seeds_expand_to_stable_distinct_trials():
    cfg = SweepConfig(
        base=["model_size=tiny"],
        grid={"planner.num_samples": [16, 32]},
        random={"optim.lr": {"loguniform": [1e-4, 1e-3]}, "utd": {"choice": [0.5, 1.0]}},
        num_random=3,
        random_seed=7,
        seeds=[1, 2],
    )
    trials = expand_trials(cfg)
    assert len(trials) == 2 * 3 * 2 and len({t["slug"] for t in trials}) == 12
    assert expand_trials(cfg) == trials  # a resumed sweep finds the same run directories
    assert all(1e-4 <= t["varied"]["optim.lr"] <= 1e-3 for t in trials)
    assert trials[0]["overrides"][0] == "model_size=tiny" and trials[0]["overrides"][-1] == "seed=1"
    with pytest.raises(ValueError, match=r"random.utd .* expected one of"):
        SweepConfig(random={"utd": [0.5, 1.0]})
    with pytest.raises(ConfigError, match="'gird' not in 'SweepConfig'"):
        compose_options(SweepConfig, ["+gird.utd=[1]"])
    with pytest.raises(ConfigError, match=r"random.utd .* expected one of"):  # the command line's path, too
        compose_options(SweepConfig, ["+random.utd=[0.5,1.0]"])


def test_a_bad_override_fails_before_any_trial_starts(tmp_path):
    from distributed.sweep import run_sweep

    cfg = SweepConfig(storage=str(tmp_path), base=TINY, grid={"planner.num_sample": [16]})
    with pytest.raises(Exception, match="num_sample"):
        run_sweep(cfg)
    assert not (tmp_path / "sweep" / "tune").exists()


@pytest.mark.parametrize("bad, key", [("num_random=many", "num_random"), ('base=["steps=many"]', "steps")])
def test_the_command_fails_at_once_on_a_bad_override_naming_the_key(tmp_path, bad, key):
    out = subprocess.run(
        [sys.executable, str(REPO / "launch" / "sweep.py"), f"storage={tmp_path}/sweeps", bad],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert key in out.stderr and "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written (and Ray, started after the checks, never ran)


@pytest.mark.ray
def test_sweep_of_four_trials_writes_its_table_and_a_resume_reruns_nothing_finished(tmp_path, ray_session):
    from distributed.sweep import run_sweep

    cfg = SweepConfig(
        name="small",
        storage=str(tmp_path),
        base=TINY,
        grid={"planner.num_samples": [16, 32]},
        seeds=[1, 2],
        cpus_per_trial=0.5,
        max_failures=0,
        wandb_mode="disabled",
    )
    first = run_sweep(cfg)
    assert first["errors"] == {} and len(first["trained"]) == 4 and first["skipped"] == []
    rows = first["rows"]
    assert [r["status"] for r in rows] == ["done"] * 4
    for r in rows:
        assert r["score_kind"] == "normalized_score" and r["env_steps"] == 600 and r["updates"] == 60
        assert r["best_score"] >= r["final_score"] > 0 and r["return/cartpole-balance"] > 0
        assert r["attempts"] == 1 and r["wall_s"] > 0
    sweep_dir = tmp_path / "small"
    csv_lines = (sweep_dir / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 5 and "final_score" in csv_lines[0] and "planner.num_samples" in csv_lines[0]
    assert (sweep_dir / "results.md").read_text().count("| done |") == 4
    assert (sweep_dir / "results.png").stat().st_size > 1000
    runs = sorted((sweep_dir / "runs").iterdir())
    assert len(runs) == 4
    before = {p.name: (p / "metrics.jsonl").read_bytes() for p in runs}

    # one trial loses its done marker (as if killed before finishing): only it runs again,
    # resuming from its checkpoint at the last step instead of starting over
    lost = runs[0]
    (lost / "done.json").unlink()
    again = run_sweep(cfg)
    assert again["trained"] == [lost.name] and sorted(again["skipped"]) == sorted(p.name for p in runs[1:])
    for p in runs[1:]:
        assert (p / "metrics.jsonl").read_bytes() == before[p.name]
        assert len((p / "attempts.jsonl").read_text().splitlines()) == 1
    redone = next(r for r in again["rows"] if r["trial"] == lost.name)
    assert redone["status"] == "done" and redone["attempts"] == 2 and redone["env_steps"] == 600
    assert json.loads((lost / "done.json").read_text())["updates"] == 60
    # and a third run trains nothing at all
    assert run_sweep(cfg)["trained"] == []


def test_nested_keys_from_the_command_line_mean_dotted_overrides():
    cfg = compose_options(
        SweepConfig, ["+grid.planner.num_samples=[16,32]", "+random.optim.lr={uniform:[1e-4,2e-4]}", "num_random=1"]
    )
    assert list(cfg.grid) == ["planner.num_samples"] and list(cfg.random) == ["optim.lr"]
    assert expand_trials(cfg)[1]["overrides"][0] == "planner.num_samples=32"


@pytest.mark.ray
def test_a_failing_trial_is_retried_then_reported_with_its_error(tmp_path, ray_session):
    from distributed.sweep import run_sweep

    cfg = SweepConfig(
        name="bad",
        storage=str(tmp_path),
        base=TINY,
        grid={"task": ["walker-wlak"]},
        cpus_per_trial=0.5,
        max_failures=1,
        wandb_mode="disabled",
    )
    out = run_sweep(cfg)
    ((slug, error),) = out["errors"].items()
    assert "walker-wlak" in error
    row = out["rows"][0]
    assert row["status"] == "error" and row["attempts"] == 2  # the first try and one retry
    md = (tmp_path / "bad" / "results.md").read_text()
    assert "| error |" in md and "walker-wlak" in md
