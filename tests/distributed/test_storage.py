"""distributed/storage.py and what a run writes through it, on the moto S3 server (s3_bucket): a
URI is never a local folder, files land as objects, checkpoints and logs round-trip, a missing
bucket or an unknown scheme is refused by name, and the default run directory of a `ray job
submit` job leaves Ray's package folder."""

from pathlib import Path

import pytest
import torch

from distributed.config import ConfigError, compose, run_location
from distributed.storage import StorageError, check_writable, is_remote, storage_path, write_bytes


def test_a_uri_is_an_object_store_path_and_a_path_stays_a_pathlib_path(tmp_path):
    p = storage_path("s3://bar/run2") / "summary.json"
    assert is_remote(p) and str(p) == "s3://bar/run2/summary.json"  # never Path('s3:/bar/run2')
    local = storage_path(str(tmp_path / "run"))
    assert type(local) is type(Path()) and not is_remote(local)
    assert storage_path("~/x") == Path.home() / "x"
    with pytest.raises(StorageError, match="nosuch://"):
        storage_path("nosuch://bucket/x")


def test_files_round_trip_as_objects_and_nothing_is_written_locally(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = storage_path(f"{s3_bucket}/run")
    write_bytes(run / "run.json", b'{"a": 1}')
    assert (run / "run.json").read_bytes() == b'{"a": 1}'
    from agents.checkpoint import CHECKPOINT_FILE, WEIGHTS_FILE, load_checkpoint, write_checkpoint

    state = {"agent": {"model": {"w": torch.arange(6.0).reshape(2, 3)}}, "extra": {"step": 3}}
    write_checkpoint(f"{s3_bucket}/run", state, state["agent"]["model"])
    assert (run / CHECKPOINT_FILE).exists() and (run / WEIGHTS_FILE).exists()
    back = load_checkpoint(f"{s3_bucket}/run")  # a directory URI, as a run passes it
    assert torch.equal(back["agent"]["model"]["w"], state["agent"]["model"]["w"]) and back["extra"]["step"] == 3
    from safetensors.torch import load as load_safetensors

    assert torch.equal(load_safetensors((run / WEIGHTS_FILE).read_bytes())["w"], state["agent"]["model"]["w"])
    assert list(tmp_path.iterdir()) == []


def test_metrics_of_a_run_on_a_uri_are_uploaded_and_continue_after_a_restart(s3_bucket, tmp_path):
    from distributed.run_log import RunLogger, plot_learning_curves, read_metrics

    run = f"{s3_bucket}/run"
    log = RunLogger(run, {}, wandb_mode="disabled", upload_every_s=0.0)
    log.log(1, {"episode_return": 1.0, "return/a": 1.0}, kind="eval")
    assert [r["step"] for r in read_metrics(run)] == [1]  # uploaded at once (upload_every_s=0)
    log.close()
    log = RunLogger(run, {}, wandb_mode="disabled", upload_every_s=60.0)  # a resumed run
    log.log(2, {"episode_return": 2.0, "return/a": 2.0}, kind="eval")
    log.close()  # close uploads what the interval held back
    assert [r["step"] for r in read_metrics(run, "eval")] == [1, 2]
    assert plot_learning_curves(run) is not None
    assert storage_path(run + "/learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_a_missing_bucket_is_refused_naming_the_key(s3_bucket):
    missing = "s3://no-such-bucket-latentfleet/run"
    with pytest.raises(
        StorageError,
        match=r"run_dir=s3://no-such-bucket-latentfleet/run: bucket 'no-such-bucket-latentfleet' does not exist",
    ):
        check_writable(missing, "run_dir")
    with pytest.raises(ConfigError, match="does not exist"):
        from distributed.loop import Loop

        Loop(compose("train", ["model_size=tiny", f"run_dir={missing}"]))
    check_writable(f"{s3_bucket}/run", "run_dir")  # an existing bucket passes, and the probe is gone
    assert not storage_path(s3_bucket).fs.find(s3_bucket.split("://")[1])


def test_default_run_dir_of_a_ray_job_outlives_the_job():
    pkg = "/tmp/ray/session_x/runtime_resources/working_dir_files/_ray_pkg_0123abcd"
    assert run_location("runs/mt80-tiny-smoke-s1", cwd=pkg) == str(
        Path.home() / "latentfleet-runs" / "mt80-tiny-smoke-s1"
    )
    assert run_location("runs/mt80-tiny-smoke-s1", cwd="/home/me/latentfleet") == "runs/mt80-tiny-smoke-s1"
    assert run_location("/data/runs/x", cwd=pkg) == "/data/runs/x"
    assert run_location("s3://b/p", cwd=pkg) == "s3://b/p"


def test_a_node_local_path_on_a_multi_node_cluster_is_refused_unless_shared():
    from distributed.ray_parts import check_cluster_storage

    cfg = compose("mt80", ["preset=smoke", "run_dir=/tmp/x"])
    check_cluster_storage(cfg, nodes=1)
    with pytest.raises(ConfigError, match=r"run_dir=/tmp/x .* 3 nodes.*storage_shared=true"):
        check_cluster_storage(cfg, nodes=3)
    check_cluster_storage(compose("mt80", ["preset=smoke", "run_dir=/tmp/x", "storage_shared=true"]), nodes=3)
    check_cluster_storage(compose("mt80", ["preset=smoke", "run_dir=s3://b/run"]), nodes=3)
