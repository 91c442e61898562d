"""The termination study's report (distributed/testing/termination.py, run by bench/termination.py): a run's
score is the mean of its last evaluations once it has finished, each arm is compared with the no-head run
of the same seed (counts and an exact one-sided Wilcoxon signed-rank p), and a finished run's final
checkpoint can be re-evaluated over more episodes."""

import json
import random

import pytest

from distributed.testing.termination import TerminationBench, report, rescore, run_scores, signed_rank_p


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
    # one pair above (by 765, rank 2), one below (by 35, rank 1): W+ = 2, reached by 2 of 4 sign patterns
    assert "| hard | 2 | 417.5 | 417.5 | 1/0/1, p 0.500 | 220.0 | 1/0/1, p 0.500 |" in text
    assert "| none | 3 | 36.7 | 35.0 | - | 64.2 | - |" in text
    assert "| hard | 1 | 10.0 / 50.0 / 1000.0 / 600.0 | 800.0 | 415.0 | 100.0 |" in text
    assert (tmp_path / "termination.csv").exists() and (tmp_path / "termination.png").exists()


def test_signed_rank_p_exact_values():
    assert signed_rank_p([3, 1, 4, 1.5, 9]) == 1 / 32  # every pair above: only the all-positive pattern reaches it
    assert signed_rank_p([-3, -1, -4, -1.5, -9]) == 1.0
    assert signed_rank_p([1, -2, 3, 4, 5]) == 3 / 32  # W+ = 13 of 15: reached by the complements of {}, {1}, {2}
    assert signed_rank_p([2, -2, 3]) == 3 / 8  # tied magnitudes share rank 1.5: W+ = 4.5
    assert signed_rank_p([0, 1]) == 0.5 and signed_rank_p([0, 0]) is None  # zero differences are dropped
    with pytest.raises(ValueError, match="n <= 20"):
        signed_rank_p(list(range(1, 22)))


def test_signed_rank_p_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    for n in (4, 7, 10):
        d = [rng.gauss(0.3, 1.0) for _ in range(n)]
        assert signed_rank_p(d) == pytest.approx(stats.wilcoxon(d, alternative="greater", method="exact").pvalue)


def test_rescore_evaluates_a_finished_runs_checkpoint_once(tmp_path):
    import torch

    from agents.agent import Agent
    from agents.checkpoint import save_checkpoint
    from distributed.config import build_agent_config, compose
    from distributed.evaluator import evaluate
    from envs import load_task_set

    task = "gym-invertedpendulum"
    cfg = compose(
        "train",
        [
            f"task={task}",
            "model_size=tiny",
            "planner.num_samples=16",
            "planner.num_elites=4",
            "planner.num_pi_trajs=2",
            "planner.iterations=1",
        ],
    )
    ts = load_task_set(task)
    agent = Agent(build_agent_config(cfg, ts), action_masks=torch.tensor(ts.action_masks()))
    run = tmp_path / "hard-s1"
    save_checkpoint(run, agent)
    assert rescore(run, task, 3, 30) is None  # no summary.json: the run has not finished
    (run / "summary.json").write_text("{}")
    value = rescore(run, task, 3, 30)
    kept = json.loads((run / "rescore_3.json").read_text())
    assert kept["return"] == value and kept["episodes"] == 3
    from distributed.testing.termination import RESCORE_SEED

    assert value == pytest.approx(
        evaluate(agent, ts, [task], episodes=3, seed=RESCORE_SEED, max_steps=30)["tasks"][task]["return"]
    )
    (run / "rescore_3.json").write_text(json.dumps({**kept, "return": -1.0}))
    assert rescore(run, task, 3, 30) == -1.0  # kept: not evaluated again


def test_report_shows_the_rescored_final_policy(tmp_path):
    for arm, seed, final in (("hard", 1, 90.0), ("none", 1, 40.0), ("hard", 2, 70.0), ("none", 2, 50.0)):
        _run(tmp_path / f"{arm}-s{seed}", [10, 20], wall=1)
        (tmp_path / f"{arm}-s{seed}" / "rescore_50.json").write_text(json.dumps({"return": final}))
    b = TerminationBench(out=str(tmp_path), arms=["hard", "none"], seeds=[1, 2], eval_episodes=2, rescore_episodes=50)
    text = report(b, tmp_path)
    assert "| hard | 1 | 10.0 / 20.0 | 15.0 | 15.0 | 90.0 | 1.0 |" in text
    # both pairs above by 50 and 20: W+ = 3, only the all-positive pattern
    assert text.splitlines()[-2].endswith("| 80.0 | 2/0/0, p 0.250 |")


def test_replan_evaluates_the_same_checkpoint_with_another_use_of_its_head(tmp_path):
    import torch

    from agents.agent import Agent
    from agents.checkpoint import save_checkpoint
    from distributed.config import build_agent_config, compose
    from envs import load_task_set

    task = "gym-hopper"  # a continuous reward: other actions, another return
    cfg = compose(
        "train",
        [
            f"task={task}",
            "model_size=tiny",
            "planner.num_samples=16",
            "planner.num_elites=4",
            "planner.num_pi_trajs=2",
            "planner.iterations=1",
            "planner.termination=hard",
        ],
    )
    ts = load_task_set(task)
    agent = Agent(build_agent_config(cfg, ts), action_masks=torch.tensor(ts.action_masks()))
    with torch.no_grad():  # rewards and values that differ between samples (a fresh model's are all zero), and
        #                    a head that predicts a fall everywhere: "hard" keeps only each sample's first reward
        gen = torch.Generator().manual_seed(0)
        for p in agent.model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
        last = [m for m in agent.model.termination_head.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.bias.fill_(20.0)
    run = tmp_path / "hard-s1"
    save_checkpoint(run, agent)
    (run / "summary.json").write_text("{}")
    hard = rescore(run, task, 2, 20)
    off = rescore(run, task, 2, 20, termination="off")
    assert json.loads((run / "rescore_2_off.json").read_text())["termination"] == "off"
    assert json.loads((run / "rescore_2.json").read_text())["termination"] == "hard"
    assert rescore(run, task, 2, 20, termination="hard") == hard  # the saved mode, evaluated again: the same
    assert off != hard  # a head that always fires changes the plans when it is used, not when it is off


def test_report_compares_a_head_run_planned_as_trained_with_its_replans(tmp_path):
    finals = {1: (90.0, 40.0), 2: (70.0, 75.0), 3: (60.0, 30.0)}  # seed: (as trained, planned with the head off)
    for seed, (trained, off) in finals.items():
        for arm in ("hard", "none"):
            _run(tmp_path / f"{arm}-s{seed}", [10, 20], wall=1)
            (tmp_path / f"{arm}-s{seed}" / "rescore_50.json").write_text(json.dumps({"return": trained}))
        (tmp_path / f"hard-s{seed}" / "rescore_50_off.json").write_text(json.dumps({"return": off}))
    b = TerminationBench(
        out=str(tmp_path), arms=["hard", "none"], seeds=[1, 2, 3], eval_episodes=2, rescore_episodes=50, replan=["off"]
    )
    text = report(b, tmp_path)
    # differences 50, -5, 30: ranks 3, 1, 2; W+ = 5, reached by {+,+,+} and {+,-,+}: 2 of 8
    assert text.splitlines()[-1] == "| hard (hard) | 3 | 73.3 | 48.3 | 2/0/1, p 0.250 |"
    with pytest.raises(ValueError, match="rescore_episodes"):
        TerminationBench(replan=["off"])
    with pytest.raises(ValueError, match="choose planner termination modes"):
        TerminationBench(replan=["never"], rescore_episodes=5)
