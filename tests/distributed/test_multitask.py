"""Multitask collection and sampling: seeding per env, task balance modes, weight lag."""

import numpy as np
import pytest

from distributed.config import compose
from distributed.loop import run
from distributed.replay.sampler import plan_draws
from distributed.run_log import read_metrics


@pytest.mark.parametrize("balance, p_task0", [("uniform", 0.9), ("task", 0.5), ("sqrt", 0.75)])
def test_each_balance_mode_samples_in_its_proportions(balance, p_task0):
    # task 0 holds 900 windows (split over two shards), task 1 holds 100: sqrt weights 30 : 10
    sources = [{0: 600, 1: 100}, {0: 300}]
    rng = np.random.default_rng(0)
    n, draws = 4000, 10
    share = []
    for _ in range(draws):
        plans = plan_draws(sources, n, balance, rng)
        if balance == "uniform":  # per source, in proportion to its windows: 700 : 300
            assert abs(plans[0]["n"] / n - 0.7) < 4 * np.sqrt(0.21 / n)
            continue
        got = sum(p["per_task"].get(0, 0) for p in plans)
        assert sum(sum(p["per_task"].values()) for p in plans) == n
        share.append(got / n)
        # within a task, windows are uniform wherever they live: task 0 splits 600 : 300
        assert abs(plans[0]["per_task"][0] / got - 2 / 3) < 4 * np.sqrt((2 / 9) / got)
    if share:
        sigma = np.sqrt(p_task0 * (1 - p_task0) / (n * draws))
        assert abs(np.mean(share) - p_task0) < 4 * sigma, (balance, np.mean(share))


def test_every_task_has_data_before_the_first_update_and_runners_act_with_current_weights(tmp_path):
    # cartpole episodes last 500 steps, mw-reach's 100 (x2 action repeat: 50 agent steps... either way
    # longer than seed_steps): learning must wait until both tasks have an episode in the store
    cfg = compose(
        "train",
        [
            "task='cartpole-balance,mw-reach'",
            "model_size=tiny",
            "steps=1300",
            "seed_steps=50",
            "seed_episodes=1",
            "utd=0.05",
            "publish_every=1000",
            "batch_size=16",
            "eval_freq=100000",
            "eval_episodes=1",
            "eval_max_steps=5",
            "checkpoint_freq=100000",
            "diagnostics=false",
            "wandb_mode=disabled",
            "progress=false",
            "planner.num_samples=16",
            "planner.num_elites=4",
            "planner.num_pi_trajs=4",
            "planner.iterations=1",
            f"run_dir={tmp_path}/run",
        ],
    )
    summary = run(cfg)
    assert summary["updates"] > 0
    episodes, train = read_metrics(tmp_path / "run", "episode"), read_metrics(tmp_path / "run", "train")
    first_update_step = train[0]["step"]
    first_episode = {}
    for e in episodes:
        first_episode.setdefault(e["task"], e["step"])
    assert set(first_episode) == {"cartpole-balance", "mw-reach"}
    assert all(step <= first_update_step for step in first_episode.values()), (first_episode, first_update_step)
    assert first_episode["cartpole-balance"] > 50  # seeding went on past seed_steps for the long task
    # one process: the runner plans with the learner's own model, so no episode is collected with old weights
    # (whatever publish_every says: it is for runners that hold a copy)
    assert {e["weights_lag"] for e in episodes} == {0}
    assert summary["weights_lag_p99"] == 0
    # the store records, per episode, the weights version it was collected with: the same as the metrics
    from distributed.replay.inspect import episode_index

    index = episode_index(tmp_path / "run" / "replay" / "shard-000")
    names = ["cartpole-balance", "mw-reach"]
    assert [(names[t], int(v)) for t, v in zip(index["task"], index["version"], strict=False)] == [
        (e["task"], e["weights_version"]) for e in episodes
    ]
    assert len({e["weights_version"] for e in episodes}) > 1  # learning published new weights in between


def test_a_long_episode_is_sampleable_before_it_ends_and_its_pieces_hold_every_window_once(tmp_path):
    from distributed.episodes import EpisodeBuilder
    from distributed.loop import Loop
    from distributed.replay.reader import ShardReader

    H = 3
    cfg = compose(
        "train",
        [
            "task=cartpole-balance",
            "model_size=tiny",
            "partial_episodes=true",
            "steps=1000",
            "wandb_mode=disabled",
            "progress=false",
            f"run_dir={tmp_path}/run",
        ],
    )
    loop = Loop(cfg)
    try:
        loop.start()
        stats = loop.parts.collector.collect(0, 120, True).result()
        assert stats["episodes"] == []  # the 500-step episode is running ...
        reader = ShardReader(tmp_path / "run" / "replay" / "shard-000")
        assert reader.window_total(H) == 120 + 1 - H  # ... and every window so far is sampleable
        loop.parts.learners.members[0].source.refresh()
        batch = loop.parts.learners.members[0].source.sample(8, H, np.random.default_rng(0))
        assert batch["obs"].shape == (H + 1, 8, 5)
    finally:
        loop.shutdown()

    # pieces overlap by H rows: joined, they are the episode, and no window is stored twice
    rng = np.random.default_rng(1)
    b = EpisodeBuilder(0, 2, 1)
    b.start(rng.standard_normal(2))
    pieces = []
    for t in range(40):
        b.add(rng.uniform(-1, 1, 1), rng.standard_normal(2), float(rng.uniform()), False, t == 39)
        if t % 7 == 6 and (p := b.piece(H)) is not None:
            pieces.append(p)
    pieces.append(b.finish())
    whole = {k: np.asarray(v) for k, v in zip(("obs", "reward"), (b.obs, b.reward), strict=False)}
    starts, first = [], 0
    for p in pieces:
        n = len(p["obs"])
        assert np.array_equal(p["obs"], whole["obs"][first : first + n])
        assert np.array_equal(p["reward"][1:], np.asarray(whole["reward"][first + 1 : first + n], np.float32))
        starts += list(range(first, first + n - H))
        first += n - H
    assert starts == list(range(41 - H)) and pieces[-1]["truncated"][-1] and pieces[-1]["final"]


@pytest.mark.ray
def test_a_runner_s_recorded_weight_lag_is_the_updates_made_since_its_weights_were_published(ray_session, tmp_path):
    # a controlled Ray run: weights are published once, at the start (publish_every exceeds the run's updates),
    # so the runner acts with version 1 all run long and an episode's true lag is the learner's update count
    # when the driver records the episode: the "updates" of the last train row logged before it
    cfg = compose(
        "mt80",
        [
            "preset=smoke",
            "task='cartpole-balance,mw-reach'",
            "num_runners=1",
            "steps=900",
            "seed_steps=200",
            "publish_every=1000000000",
            f"run_dir={tmp_path}/run",
        ],
    )
    run(cfg)
    updates, lags = 0, []
    for row in read_metrics(tmp_path / "run"):
        if row["kind"] == "train":
            updates = row["updates"]
        elif row["kind"] == "episode":
            assert (row["weights_version"], row["weights_lag"]) == (1, updates), (row, updates)
            lags.append(row["weights_lag"])
    assert len(lags) > 10 and max(lags) > 10, lags  # stale weights, many updates stale (44 in a development run)
    summary = read_metrics(tmp_path / "run", "summary")[-1]
    assert summary["weights_lag_p50"] == np.percentile(lags, 50) and summary["weights_lag_p99"] == np.percentile(
        lags, 99
    )
