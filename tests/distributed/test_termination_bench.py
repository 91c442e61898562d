"""bench/termination.py's report: a run's score is the mean of its last evaluations once it has
finished, and each arm is compared with the no-head run of the same seed."""
import json

from bench.termination import TerminationBench, report, run_scores


def _run(path, returns, wall=None):
    path.mkdir(parents=True)
    rows = [{"kind": "eval", "step": 2000 * (k + 1), "episode_return": r} for k, r in enumerate(returns)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if wall is not None:
        (path / "summary.json").write_text(json.dumps({"wall_s": wall}))


def test_scores_and_paired_wins(tmp_path):
    _run(tmp_path / "hard-s1", [10, 50, 1000, 600], wall=100)
    _run(tmp_path / "none-s1", [10, 20, 30, 40], wall=90)
    _run(tmp_path / "hard-s2", [10, 20, 30, 40], wall=100)
    _run(tmp_path / "none-s2", [10, 500, 60, 80], wall=90)
    _run(tmp_path / "hard-s3", [10, 2000])  # still running: no score yet
    _run(tmp_path / "none-s3", [5, 5, 5, 5], wall=90)
    evals, score, wall = run_scores(tmp_path / "hard-s1", 2)
    assert evals[-1] == (8000, 600) and score == 800 and wall == 100
    assert run_scores(tmp_path / "hard-s3", 2)[1] is None
    b = TerminationBench(out=str(tmp_path), arms=["hard", "none"], seeds=[1, 2, 3], eval_episodes=2)
    text = report(b, tmp_path)
    # scores (800 + 35) / 2, s1 800 > 35, s2 35 < 70; means of all evaluations 415 and 25 against 25 and 162.5
    assert "| hard | 2 | 417.5 | 417.5 | 1/0/1 | 220.0 | 1/0/1 |" in text
    assert "| none | 3 | 36.7 | 35.0 | - | 64.2 | - |" in text
    assert "| hard | 1 | 10.0 / 50.0 / 1000.0 / 600.0 | 800.0 | 415.0 | 100.0 |" in text
    assert (tmp_path / "termination.csv").exists() and (tmp_path / "termination.png").exists()
