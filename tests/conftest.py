"""Shared test set-up: one torch thread (2-core CI machines), software EGL for MuJoCo."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session (ray.init takes seconds); tests using it are
    marked @pytest.mark.ray."""
    import tempfile

    ray = pytest.importorskip("ray")
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    os.environ.setdefault("RAY_worker_niceness", "0")  # as distributed/ray_session.py: actors are the work
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.hookimpl(tryfirst=True)  # before `-m` selects: a test that uses ray_session counts as marked `ray`
def pytest_collection_modifyitems(session, config, items):
    """Every test that uses Ray is marked `ray` (scripts/test.sh runs those in one process, after the
    others); the `ray job submit` test runs first of them: its own Ray head refuses submissions ("No
    available agent ... try again later") once this session's embedded Ray has started (root cause
    not found). Under pytest-xdist with `--dist loadgroup`, the Ray tests share one worker, in order."""
    first = [i for i in items if i.nodeid.startswith("tests/distributed/test_job_submit.py")]
    items[:] = first + [i for i in items if i not in first]
    for item in items:
        if item.get_closest_marker("ray") is not None or "ray_session" in getattr(item, "fixturenames", ()):
            if item.get_closest_marker("ray") is None:
                item.add_marker(pytest.mark.ray)
            item.add_marker(pytest.mark.xdist_group("ray"))
