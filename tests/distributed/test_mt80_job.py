"""The distributed job on an embedded Ray: bad input, no deadlock before the first episode."""

import json
import threading
import time

import pytest
import ray

from distributed.config import ConfigError
from distributed.loop import Loop
from distributed.testing.jobs import compose_run_config

pytestmark = pytest.mark.ray


# mt80 end to end (all 80 tasks, two learner ranks, diagnostics) runs as a submitted job: test_job_submit.py


def _small(tmp_path, *extra):
    return compose_run_config(
        ["preset=smoke", "task='cartpole-balance,pendulum-swingup,mw-reach'", f"run_dir={tmp_path}/run", *extra]
    )


# a killed env runner or shard actor (restarted in a new process, nothing lost, the run finishes) and a
# whole job killed and resumed (counters, rate limiter and learner RNG streams continue): test_faults.py


def test_bad_configs_fail_before_any_actor_starts(ray_session, tmp_path, monkeypatch):
    free = lambda: ray.available_resources().get("CPU", 0.0)  # noqa: E731  an actor would hold CPU
    deadline = time.time() + 30  # the previous test's actors may still be releasing their CPUs
    while free() < ray.cluster_resources().get("CPU", 0.0) and time.time() < deadline:
        time.sleep(0.2)
    n0 = free()
    with pytest.raises(ConfigError, match="resources cannot be satisfied.*CPU: needs"):
        Loop(_small(tmp_path, "num_runners=40", "cpus_per_runner=1")).start()
    with pytest.raises(ConfigError, match="resources cannot be satisfied.*GPU"):
        Loop(_small(tmp_path, "num_learners=1", "gpus_per_learner=1")).start()
    # a run directory made by another config
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text(
        json.dumps({"task": "mt30", "model_size": "tiny", "seed": 1, "num_shards": 2})
    )
    with pytest.raises(ConfigError, match="belongs to another run"):
        Loop(_small(tmp_path))
    # a task whose simulator package this machine lacks (all are installed here, so point
    # Meta-World's check at a package that does not exist)
    import distributed.ray_parts as ray_parts

    monkeypatch.setitem(ray_parts.DOMAIN_PACKAGES, "metaworld", ("metaworld_not_installed", "metaworld"))
    with pytest.raises(ConfigError, match="cannot build.*pip install metaworld.*mw-reach"):
        Loop(_small(tmp_path / "other"))
    assert free() >= n0, "a refused config left an actor holding CPU"


def test_collection_is_not_held_back_before_any_episode_can_be_learned_from(ray_session, tmp_path):
    """Learning is allowed after 100 steps but the first 500-step episode ends only at step 500:
    the limiter must not stop collection while there is nothing to sample (a deadlock)."""
    cfg = compose_run_config(
        [
            "preset=smoke",
            "task=cartpole-balance",
            "num_runners=1",
            "max_episode_steps=null",
            "seed_steps=100",
            "utd=0.2",
            "max_lag=5",
            "steps=700",
            f"run_dir={tmp_path}/run",
        ]
    )
    co = Loop(cfg)
    done = {}
    worker = threading.Thread(target=lambda: done.update(co.run()), daemon=True)
    try:
        worker.start()
        worker.join(timeout=240)
        assert not worker.is_alive(), "the run stalled"
    finally:
        co.shutdown()
    assert done["env_steps"] >= 700 and done["updates"] > 0 and done["episodes"] >= 1
