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
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server():
    """One S3-compatible server (moto, its own process on a free loopback port) for the session."""
    pytest.importorskip("moto.server", reason="moto[server] is in the dev extra: ./scripts/setup.sh")
    from distributed.testing.s3_server import S3Server

    with S3Server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server, monkeypatch, request):
    """A fresh bucket on the session's S3 server, with AWS_ENDPOINT_URL and dummy credentials set for
    this test only (its subprocesses inherit them); returns 's3://<bucket>'."""
    import re
    import uuid

    import fsspec

    for key, value in s3_server.environ.items():
        monkeypatch.setenv(key, value)
    fsspec.AbstractFileSystem.clear_instance_cache()  # no client built under another test's environment
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:6]
    yield s3_server.make_bucket(name)
    fsspec.AbstractFileSystem.clear_instance_cache()


@pytest.hookimpl(tryfirst=True)  # before `-m` selects: a test that uses ray_session counts as marked `ray`
def pytest_collection_modifyitems(session, config, items):
    """Every test that uses Ray is marked `ray` (scripts/test.sh runs those in one process, after the
    others); the `ray job submit` test runs first of them: its own Ray head refuses submissions ("No
    available agent ... try again later") once this session's embedded Ray has started (root cause
    not found). Under pytest-xdist with `--dist loadgroup`, the Ray tests share one worker, in order."""
    # the object-storage runs (test_run_on_s3.py) start their own embedded Ray in subprocesses: also before
    # the session's, so no two local Rays share the machine's default ports
    first = [
        i
        for f in ("tests/distributed/test_job_submit.py", "tests/distributed/test_run_on_s3.py")
        for i in items
        if i.nodeid.startswith(f)
    ]
    items[:] = first + [i for i in items if i not in first]
    for item in items:
        if item.get_closest_marker("ray") is not None or "ray_session" in getattr(item, "fixturenames", ()):
            if item.get_closest_marker("ray") is None:
                item.add_marker(pytest.mark.ray)
            item.add_marker(pytest.mark.xdist_group("ray"))
