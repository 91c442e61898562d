"""TD-MPC2 dataset chunks <-> the Zarr replay store, and training from a store (offline, mixed)."""

import json

import numpy as np
import pytest
import torch

from distributed.config import ConfigError, config_from_dict
from distributed.loop import Loop, run
from distributed.offline.exporter import export_tdmpc2
from distributed.offline.importer import import_record_path, import_tdmpc2
from distributed.offline.tdmpc2_format import ChunkFormatError, read_chunk
from distributed.replay.layout import read_state


def make_chunk(n, t1, obs_dim, action_dim, tasks, seed, first_id=0):
    """Episodes of a small linear system in the published layout: obs [N, T+1, O] float32,
    action [N, T+1, A] and reward [N, T+1] float32 with NaN on row 0, task [N, T+1] int64.
    obs[..., 0] carries a global episode number so a test can trace every episode."""
    g = torch.Generator().manual_seed(seed)
    A = 0.9 * torch.eye(obs_dim - 1)
    B = torch.randn(action_dim, obs_dim - 1, generator=g) * 0.5
    obs = torch.zeros(n, t1, obs_dim)
    action = torch.rand(n, t1, action_dim, generator=g) * 2 - 1
    x = torch.randn(n, obs_dim - 1, generator=g)
    reward = torch.zeros(n, t1)
    obs[:, 0, 1:] = x
    for t in range(1, t1):
        x = x @ A + action[:, t] @ B
        obs[:, t, 1:] = x
        reward[:, t] = -(x**2).mean(-1)
    obs[..., 0] = (first_id + torch.arange(n, dtype=torch.float32))[:, None]
    action[:, 0], reward[:, 0] = float("nan"), float("nan")
    task = torch.tensor([tasks[i % len(tasks)] for i in range(n)], dtype=torch.int64)[:, None].expand(n, t1)
    return {"obs": obs, "action": action, "reward": reward, "task": task.clone()}


def make_dataset(directory, files=3, n=6, t1=21, obs_dim=7, action_dim=3, tasks=(0, 1)):
    directory.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        chunk = make_chunk(n, t1, obs_dim, action_dim, tasks, seed=k, first_id=k * n)
        torch.save(chunk, directory / f"chunk-{k:05d}.pt")
    return sorted(directory.glob("*.pt"))


def test_import_then_export_gives_the_same_files(tmp_path):
    src = make_dataset(tmp_path / "src")
    report = import_tdmpc2(tmp_path / "src", tmp_path / "shard", chunk_len=64, flush_every=4, progress=False)
    assert report["imported"] == 18 and report["transitions"] == 18 * 20
    _, commit = read_state(tmp_path / "shard")
    assert commit.live_episodes == 18 and commit.live_per_task == {0: [9, 180], 1: [9, 180]}
    out = export_tdmpc2(tmp_path / "shard", tmp_path / "out", episodes_per_file=6, progress=False)
    assert [p.name for p in out] == [p.name for p in src]
    for a, b in zip(src, out, strict=False):
        orig, back = torch.load(a, weights_only=True), read_chunk(b)
        assert set(orig) == set(back)
        for k in orig:
            assert back[k].dtype == orig[k].dtype and back[k].shape == orig[k].shape, k
            assert torch.equal(torch.isnan(back[k]), torch.isnan(orig[k])) if k != "task" else True
            assert torch.equal(torch.nan_to_num(back[k]), torch.nan_to_num(orig[k])), k
    # and the export imports again to the same store content
    import_tdmpc2(tmp_path / "out", tmp_path / "shard2", chunk_len=64, progress=False)
    assert read_state(tmp_path / "shard2")[1].live_per_task == commit.live_per_task


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda d: d.update(observation=d.pop("obs")),
            r"missing \['obs'\].*unexpected \['observation'\].*Expected obs float32 \[N, T\+1, O\]",
        ),
        (
            lambda d: d.update(reward=d["reward"][:, 1:]),
            r"reward has shape \[6, 20\], expected \[N, T\+1\] = \[6, 21\]",
        ),
        (lambda d: d.update(action=d["action"][..., 0]), r"action has shape \[6, 21\], expected \[N, T\+1, A\]"),
        (lambda d: d.update(task=d["task"].float()), r"task has dtype torch.float32, expected an integer dtype"),
        (lambda d: d["obs"].__setitem__((2, 5, 3), float("nan")), r"episode 2: obs .* contains NaN"),
    ],
)
def test_bad_dataset_files_name_what_was_expected(tmp_path, damage, message):
    files = make_dataset(tmp_path / "src", files=2)
    data = torch.load(files[1], weights_only=True)
    damage(data)
    torch.save(data, files[1])
    with pytest.raises(ChunkFormatError, match=message):
        import_tdmpc2(tmp_path / "src", tmp_path / "shard", progress=False)
    if "contains NaN" not in message:  # layout errors are found before anything is written
        assert not (tmp_path / "shard").exists()


def test_a_pickled_tensordict_is_refused_with_the_conversion_command(tmp_path, monkeypatch):
    # emulate a file written by tensordict: its class lives in a module this venv does not have
    import sys
    import types

    fake = types.ModuleType("tensordict")

    class TensorDict(dict):
        pass

    TensorDict.__module__, TensorDict.__qualname__ = "tensordict", "TensorDict"
    fake.TensorDict = TensorDict
    monkeypatch.setitem(sys.modules, "tensordict", fake)
    torch.save(TensorDict(make_chunk(2, 5, 3, 1, (0,), seed=0)), tmp_path / "chunk.pt")
    monkeypatch.delitem(sys.modules, "tensordict")
    with pytest.raises(ChunkFormatError, match=r"pickled TensorDict(.|\n)*to_dict\(\)"):
        read_chunk(tmp_path / "chunk.pt")
    torch.save({**make_chunk(2, 5, 3, 1, (0,), seed=0), "task": [0, 1]}, tmp_path / "list.pt")
    with pytest.raises(ChunkFormatError, match=r"'task' is a list, expected a tensor"):
        read_chunk(tmp_path / "list.pt")


def test_interrupted_import_resumes_without_duplicating_episodes(tmp_path):
    make_dataset(tmp_path / "src", files=3, n=6)
    commits = []

    def interrupt(done):
        commits.append(done)
        if len(commits) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_tdmpc2(
            tmp_path / "src", tmp_path / "shard", chunk_len=32, flush_every=5, progress=False, on_commit=interrupt
        )
    partial = read_state(tmp_path / "shard")[1].episodes
    assert 10 <= partial < 18
    report = import_tdmpc2(tmp_path / "src", tmp_path / "shard", chunk_len=32, flush_every=5, progress=False)
    assert report["skipped"] == partial and report["imported"] == 18 - partial
    import zarr

    g = zarr.open_group(str(tmp_path / "shard"), mode="r")
    ids = g["obs"][:][g["step"][:] == 0, 0]  # obs[..., 0] of each episode's first row = its number
    assert sorted(ids.tolist()) == list(range(18)) and ids.tolist() == list(range(18))
    # a third run has nothing left to do; resuming from other files is refused
    assert import_tdmpc2(tmp_path / "src", tmp_path / "shard", progress=False)["imported"] == 0
    torch.save(make_chunk(6, 21, 7, 3, (0, 1), seed=9), tmp_path / "src" / "chunk-00000.pt")
    with pytest.raises(ValueError, match="imported from other files"):
        import_tdmpc2(tmp_path / "src", tmp_path / "shard", progress=False)
    assert json.loads(import_record_path(tmp_path / "shard").read_text())["obs_dim"] == 7


QUICK = dict(
    model_size="tiny",
    wandb_mode="disabled",
    progress=False,
    eval_episodes=1,
    eval_max_steps=10,
    planner=dict(num_samples=32, num_elites=4, num_pi_trajs=4, iterations=1),
)
PAIR = "cartpole-balance,reacher-easy"  # obs 5 / 6, actions 1 / 2


def test_offline_training_from_an_imported_dataset_lowers_the_loss(tmp_path):
    make_dataset(tmp_path / "src", files=2, n=16, t1=31, obs_dim=6, action_dim=2, tasks=(0, 1))
    import_tdmpc2(tmp_path / "src", tmp_path / "data" / "shard-000", progress=False)
    cfg = config_from_dict(
        dict(
            QUICK,
            task=PAIR,
            num_runners=0,
            offline_data=str(tmp_path / "data"),
            steps=240,
            batch_size=32,
            updates_per_round=40,
            eval_freq=10**9,
            checkpoint_freq=10**9,
            diagnostics=False,
            run_dir=str(tmp_path / "run"),
        )
    )
    summary = run(cfg)
    assert summary["updates"] == 240 and summary["env_steps"] == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["total_loss"] for r in rows if r["kind"] == "train"]
    assert len(losses) == 6
    assert losses[-1] < 0.7 * losses[0]  # dev runs: ~0.5 -> ~0.2
    # resuming continues the counters instead of starting over
    more = run(config_from_dict({**cfg.to_dict(), "steps": 260}))
    assert more["updates"] == 260


def test_mixed_training_draws_its_batch_share_from_the_offline_store(tmp_path):
    from envs import load_task_set

    ts = load_task_set("cartpole-balance")
    chunk = make_chunk(4, 21, ts.max_obs_dim, ts.max_action_dim, (0,), seed=3)
    chunk["obs"][..., 0] = 1000.0  # no cartpole observation comes near this: marks offline rows
    (tmp_path / "src").mkdir()
    torch.save(chunk, tmp_path / "src" / "c.pt")
    import_tdmpc2(tmp_path / "src", tmp_path / "offline", progress=False)
    cfg = config_from_dict(
        dict(
            QUICK,
            task="cartpole-balance",
            steps=600,
            seed_steps=500,
            utd=0.1,
            batch_size=40,
            offline_data=str(tmp_path / "offline"),
            offline_ratio=0.25,
            eval_freq=10**9,
            checkpoint_freq=10**9,
            diagnostics=False,
            run_dir=str(tmp_path / "run"),
        )
    )
    loop = Loop(cfg)
    try:
        summary = loop.run()
        assert summary["updates"] == 60
        source = loop.parts.learners.members[0].source
        source.refresh()
        batch = source.sample(40, 3, np.random.default_rng(0))
    finally:
        loop.shutdown()
    from_offline = (batch["obs"][0, :, 0] == 1000.0).sum()
    assert batch["obs"].shape[1] == 40 and from_offline == 10
    with pytest.raises(ConfigError, match="offline_ratio"):
        config_from_dict({**cfg.to_dict(), "offline_ratio": 1.5})


def test_offline_training_with_a_task_set_pads_to_its_dims_and_evaluates(tmp_path):
    from envs import load_task_set

    ts = load_task_set(PAIR)
    (tmp_path / "src").mkdir()
    torch.save(make_chunk(4, 21, 5, 1, (0,), seed=1), tmp_path / "src" / "c.pt")  # narrower than the set: padded
    import_tdmpc2(tmp_path / "src", tmp_path / "shard", progress=False)
    cfg = config_from_dict(
        dict(
            QUICK,
            task=PAIR,
            num_runners=0,
            offline_data=str(tmp_path / "shard"),
            steps=20,
            batch_size=16,
            updates_per_round=10,
            eval_freq=20,
            checkpoint_freq=10**9,
            diagnostics=False,
            run_dir=str(tmp_path / "run"),
        )
    )
    loop = Loop(cfg)
    try:
        assert loop.agent_cfg.model.obs_dim == ts.max_obs_dim and loop.agent_cfg.model.action_dim == 2
        loop.start()
        batch = loop.parts.learners.members[0].source.sample(16, 3, np.random.default_rng(0))
        assert batch["obs"].shape[-1] == ts.max_obs_dim and (batch["action_mask"][:, 1] == 0).all()  # 1 action
        loop.run()
    finally:
        loop.shutdown()
    evals = [
        json.loads(x)
        for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        if json.loads(x)["kind"] == "eval"
    ]
    assert len(evals) == 1 and {"return/cartpole-balance", "return/reacher-easy"} <= set(evals[0])
    with pytest.raises(ConfigError, match=r"holds obs/action dims \(5, 1\), wider than task set 'pendulum-swingup'"):
        Loop(config_from_dict({**cfg.to_dict(), "task": "pendulum-swingup", "run_dir": str(tmp_path / "r2")}))


def test_a_killed_import_process_resumes_without_duplicating_episodes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import zarr

    make_dataset(tmp_path / "src", files=3, n=20, t1=41, obs_dim=9)
    script = Path(__file__).resolve().parents[2] / "launch" / "import_tdmpc2.py"
    cmd = [
        sys.executable,
        str(script),
        f"source={tmp_path / 'src'}",
        f"out={tmp_path / 'shard'}",
        "flush_every=1",
        "chunk_len=64",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_at = None
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if (tmp_path / "shard" / "zarr.json").exists():
                try:
                    n = read_state(tmp_path / "shard")[1].episodes
                except Exception:  # the group is being created
                    n = 0
                if n >= 25:  # into the second file
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_at = n
                    break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert killed_at is not None, "the import finished before it could be killed"
    partial = read_state(tmp_path / "shard")[1].episodes
    assert partial < 60
    report = import_tdmpc2(tmp_path / "src", tmp_path / "shard", progress=False)
    assert report["skipped"] == partial and report["imported"] == 60 - partial
    g = zarr.open_group(str(tmp_path / "shard"), mode="r")
    ids = g["obs"][:][g["step"][:] == 0, 0]
    assert ids.tolist() == list(range(60))  # every episode once, in order


def test_parallel_import_into_several_shards_exports_back_to_the_same_files(tmp_path):
    from distributed.offline.importer import import_tdmpc2_sharded

    src = make_dataset(tmp_path / "src", files=3, n=6)
    reports = import_tdmpc2_sharded(tmp_path / "src", tmp_path / "data", 2, chunk_len=64, progress=False)
    assert [r["imported"] for r in reports] == [12, 6]  # files split in order: 2 + 1
    out = export_tdmpc2(
        sorted((tmp_path / "data").glob("shard-*[0-9]")), tmp_path / "out", episodes_per_file=6, progress=False
    )
    for a, b in zip(src, out, strict=True):
        orig, back = torch.load(a, weights_only=True), read_chunk(b)
        assert all(torch.equal(torch.nan_to_num(orig[k]), torch.nan_to_num(back[k])) for k in orig)
