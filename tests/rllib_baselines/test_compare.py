"""The comparison command: one table and one two-panel plot over ours and baselines' run dirs."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from distributed.baselines.compare import compare_runs, wall_clock

ROOT = Path(__file__).resolve().parents[2]


def _run_dir(path: Path, meta: dict, rows: list[dict]) -> Path:
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps(meta))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _eval(step, time, ret):
    return {
        "kind": "eval",
        "step": step,
        "time": time,
        "episode_return": ret,
        "return/cartpole-swingup": ret,
        "success/cartpole-swingup": 0.0,
        "normalized_score": ret / 10,
    }


@pytest.fixture
def two_runs(tmp_path):
    ours = _run_dir(
        tmp_path / "ours",
        {"task": "cartpole-swingup", "model_size": "tiny", "seed": 1},
        [
            _eval(1000, 50.0, 100.0),
            {"kind": "train", "step": 2000, "time": 90.0},
            _eval(2000, 100.0, 500.0),
            # resumed: the clock restarts at 0 (a second attempt), 100 s already spent
            {"kind": "collect", "step": 3000, "time": 10.0},
            _eval(4000, 60.0, 400.0),
        ],
    )
    sac = _run_dir(
        tmp_path / "sac",
        {"kind": "baseline", "algo": "sac", "task": "cartpole-swingup", "seed": 1},
        [_eval(2000, 20.0, 50.0), _eval(4000, 40.0, 150.0), {"kind": "summary", "step": 4000, "time": 41.0}],
    )
    return ours, sac


def test_wall_clock_adds_up_resumed_attempts():
    assert wall_clock([{"time": 1}, {"time": 5}, {"time": 2}, {"time": 3}, {"time": 1}]) == [1, 5, 7, 8, 9]


def test_the_table_has_each_runs_final_numbers(two_runs, tmp_path):
    result = compare_runs(list(two_runs), tmp_path / "out", labels=["ours", "rllib-sac"], title="cartpole")
    with open(result["files"]["csv"]) as f:
        rows = {r["run"]: r for r in csv.DictReader(f)}
    assert rows["ours"]["algorithm"] == "latentfleet (tiny)" and rows["rllib-sac"]["algorithm"] == "RLlib sac"
    assert float(rows["ours"]["final_return"]) == 400.0 and float(rows["ours"]["best_return"]) == 500.0
    assert int(rows["ours"]["env_steps"]) == 4000 and float(rows["ours"]["wall_s"]) == 160.0
    assert float(rows["ours"]["env_steps_per_s"]) == 25.0 and float(rows["ours"]["normalized_score"]) == 40.0
    assert float(rows["rllib-sac"]["final_return"]) == 150.0 and float(rows["rllib-sac"]["wall_s"]) == 41.0
    assert float(rows["rllib-sac"]["return/cartpole-swingup"]) == 150.0 and rows["rllib-sac"]["evals"] == "2"
    md = result["files"]["md"].read_text()
    assert md.startswith("# cartpole") and "| ours | latentfleet (tiny) | cartpole-swingup | 4000 | 160.0 |" in md
    curve = result["runs"][0]["curve"]
    assert [(c["step"], c["wall_s"]) for c in curve] == [(1000, 50.0), (2000, 100.0), (4000, 160.0)]
    import matplotlib.image

    image = matplotlib.image.imread(result["files"]["png"])
    assert image.shape[1] > 1.5 * image.shape[0]  # two panels side by side


def test_the_command_writes_table_and_plot_and_rejects_a_dir_without_evaluations(two_runs, tmp_path):
    ours, sac = two_runs
    out = tmp_path / "cmp"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "launch" / "compare.py"), f"runs=[{ours},{sac}]", f"out={out}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} >= {"comparison.md", "comparison.csv", "comparison.png"}
    assert "| sac | RLlib sac |" in proc.stdout
    empty = tmp_path / "empty"
    _run_dir(empty, {}, [{"kind": "train", "step": 10, "time": 1.0}])
    proc = subprocess.run(
        [sys.executable, str(ROOT / "launch" / "compare.py"), f"runs=[{empty}]", f"out={out}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode != 0 and "no evaluation rows yet" in proc.stderr


def test_the_command_fails_at_once_on_a_bad_override_naming_the_key(tmp_path):
    from distributed.config import ConfigError, compose_options
    from launch.compare import CompareOptions

    proc = subprocess.run(
        [sys.executable, str(ROOT / "launch" / "compare.py"), "runs=abc", f"out={tmp_path}/cmp"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "runs" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written
    for bad, key in [("title=[a,b]", "title"), ("outt=x", "outt")]:
        with pytest.raises(ConfigError, match=key):
            compose_options(CompareOptions, ["runs=[a]", bad])
