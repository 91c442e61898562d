"""only_tasks: a run on part of a task set keeps the whole set's model (ids, dims) and collects and
evaluates only the tasks named."""

import json

from distributed.config import compose
from distributed.loop import run
from distributed.ray_parts import assign_tasks
from distributed.replay.reader import ShardReader
from distributed.testing.jobs import TINY_RUN
from envs import load_task_set


def test_runners_get_only_the_named_tasks():
    ts = load_task_set("mt30")
    only = ["cartpole-swingup", "reacher-easy", "cup-catch"]
    for n in (1, 2, 3, 5):
        parts = assign_tasks(ts, n, only)
        assert sorted(t for p in parts for t in p) == sorted(only), (n, parts)
    assert sorted(t for p in assign_tasks(ts, 4) for t in p) == sorted(ts.names)


def test_a_run_on_part_of_a_set_collects_and_evaluates_only_that_part(tmp_path):
    run_dir = tmp_path / "run"
    summary = run(
        compose(
            "train",
            [
                *TINY_RUN,
                "task='cartpole-balance,cartpole-swingup,reacher-easy'",
                "only_tasks='reacher-easy, cartpole-swingup'",
                "steps=60",
                "max_episode_steps=15",
                "seed_steps=30",
                "utd=0.5",
                "eval_freq=1000",
                "checkpoint_freq=1000",
                f"run_dir={run_dir}",
            ],
        )
    )
    assert summary["env_steps"] >= 60
    identity = json.loads((run_dir / "run.json").read_text())
    assert identity["tasks"] == ["cartpole-balance", "cartpole-swingup", "reacher-easy"]  # the whole set's model
    assert (identity["obs_dim"], identity["action_dim"]) == (6, 2)  # reacher-easy's 6 obs, cartpole's 1 action: padded
    # nothing of cartpole-balance (id 0)
    assert sorted(ShardReader(run_dir / "replay" / "shard-000").task_counts()) == [1, 2]
    evals = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evaluated = {k for row in evals if row.get("kind") == "eval" for k in row if k.startswith("return/")}
    assert evaluated == {"return/cartpole-swingup", "return/reacher-easy"}, evaluated
