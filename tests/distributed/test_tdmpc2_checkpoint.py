"""A TD-MPC2 checkpoint (synthetic, mt80 layout, 1M) becomes a run directory that our launchers accept:
it reloads with the same outputs, plans, and finetunes on a task outside mt80; wrong requests fail
by name before anything is written."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import envs
from agents.agent import Agent
from agents.checkpoint import agent_from_checkpoint
from agents.config import discount_from_episode_length
from agents.tdmpc2_import import TDMPC2CheckpointError
from agents.testing.tdmpc2_checkpoints import current_layout, dims, older_layout, reference_forward
from distributed.config import compose, config_from_dict
from distributed.loop import Loop
from distributed.tdmpc2_checkpoint import import_tdmpc2_checkpoint

torch.set_num_threads(1)
SMALL_PLANNER = dict(num_samples=32, num_elites=4, num_pi_trajs=4, iterations=2)
# outside mt80: a new body of a known task, and a new task on a new body (2 of 6 action dims), each
# starting from the embedding of an mt80 task
NEW = {"cartpole-swingup@length=1.7": "cartpole-swingup", "pointmass-easy": "reacher-easy"}


@pytest.fixture(scope="module")
def mt80():
    return envs.load_task_set("mt80")


@pytest.fixture(scope="module")
def tdmpc2_file(tmp_path_factory, mt80):
    state = current_layout(dims("mt80", 1), [t.action_dim for t in mt80.tasks], seed=3)
    path = tmp_path_factory.mktemp("tdmpc2") / "mt80-1M.pt"
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def run_dir(tdmpc2_file, tmp_path_factory):
    from launch.import_checkpoint import main

    out = tmp_path_factory.mktemp("imported") / "mt80-1"
    assert (
        main(
            [
                str(tdmpc2_file[0]),
                "task_set=mt80",
                "model_size=1",
                f"out={out}",
                "planner.num_samples=32",
                "planner.num_elites=4",
                "planner.num_pi_trajs=4",
                "planner.iterations=2",
            ]
        )
        == out
    )
    return out


def test_the_run_directory_reloads_with_tdmpc2s_outputs(run_dir, tdmpc2_file, mt80):
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["tasks"] == list(mt80.names) and meta["tasks"][:2] == ["walker-stand", "walker-walk"]
    assert meta["tasks"][30] == "mw-assembly"  # TD-MPC2's order: 30 dm_control tasks, then Meta-World
    assert meta["action_dims"][:8] == [6, 6, 6, 6, 2, 2, 1, 1] and meta["obs_dims"][30] == 39
    assert (meta["padded_obs_dim"], meta["padded_action_dim"], meta["task_dim"]) == (39, 6, 96)
    assert meta["imported_from"]["layout"] == "current" and len(meta["imported_from"]["sha256"]) == 64
    identity = compose("train", ["task=mt80", "model_size=1"]).identity(list(mt80.names))
    assert all(meta[k] == v for k, v in identity.items() if k in meta)  # the loop accepts the directory as its own
    assert {"task", "tasks", "model_size", "seed"} <= set(meta)
    agent, extra = agent_from_checkpoint(run_dir)
    assert extra["task_set"] == "mt80" and extra["tasks"] == list(mt80.names)
    assert agent.cfg.planner.num_samples == 32 and agent.cfg.discounts[0] == pytest.approx(0.99)
    assert agent.cfg.discounts[30] == pytest.approx(0.95)
    weights = load_file(str(run_dir / "model.safetensors"))
    assert all(torch.equal(weights[k], v) for k, v in agent.model.state_dict().items())
    g = torch.Generator().manual_seed(0)
    obs, action = torch.randn(5, 39, generator=g), torch.rand(5, 6, generator=g) * 2 - 1
    task = torch.tensor([0, 8, 30, 61, 79])
    ref = reference_forward(tdmpc2_file[1]["model"], obs, action, task)
    with torch.no_grad():
        z = agent.model.encode(obs, task)
        assert torch.allclose(agent.model.Q(z, action, task, mode="all", target=True), ref["target_q"], atol=1e-5)
        assert torch.allclose(agent.model.pi(z, task)[1]["mean"], ref["pi_mean"], atol=1e-5)


def test_older_layout_and_wrong_requests(tdmpc2_file, tmp_path, run_dir):
    older = older_layout(tdmpc2_file[1])
    out = import_tdmpc2_checkpoint(older, "mt80", 1, tmp_path / "older")
    meta = json.loads((out / "run.json").read_text())
    assert meta["imported_from"]["layout"] == "older" and meta["imported_from"]["action_masks"] == "task set"
    assert meta["imported_from"]["target_q"] == "file"
    agent, _ = agent_from_checkpoint(out)
    assert torch.equal(agent.model.action_masks, torch.as_tensor(envs.load_task_set("mt80").action_masks()))
    with pytest.raises(TDMPC2CheckpointError, match=r"latent_dim: file has 128.*matches task_set=mt80 model_size=1"):
        import_tdmpc2_checkpoint(tdmpc2_file[0], "mt80", 5, tmp_path / "x")
    with pytest.raises(TDMPC2CheckpointError, match=r"num_tasks: file has 80, task_set=mt30 model_size=1 expects 30"):
        import_tdmpc2_checkpoint(tdmpc2_file[0], "mt30", 1, tmp_path / "x")
    with pytest.raises(TDMPC2CheckpointError, match="mt30 and mt80 only"):
        import_tdmpc2_checkpoint(tdmpc2_file[0], "dmc-all", 1, tmp_path / "x")
    with pytest.raises(FileExistsError, match="overwrite=true"):
        import_tdmpc2_checkpoint(tdmpc2_file[0], "mt80", 1, run_dir)
    assert not (tmp_path / "x").exists()
    from launch.import_checkpoint import parse_args

    for argv in (
        ["f.pt", "task_set=mt80", "out=o"],
        ["f.pt", "modelsize=1"],
        ["task_set=mt80", "model_size=1", "out=o"],
        ["f.pt", "task_set=mt80", "model_size=1", "out=o", "planner.num_samples=many"],
    ):
        with pytest.raises(SystemExit) as stop:
            parse_args(argv)
        assert stop.value.code == 2
    assert (
        parse_args(["f.pt", "task_set=mt80", "model_size=1", "out=o", "planner.num_samples=64"]).planner.num_samples
        == 64
    )


def _finetune(agent: Agent, task_set_names: list[str], task: str, run_dir, *, steps: int, seed_steps: int):
    """The one place this file drives the training loop: finetune `agent` on `task` alone."""
    cfg = config_from_dict(
        dict(
            task=",".join(task_set_names),
            model_size=agent.cfg.model.model_size,
            steps=steps,
            seed_steps=seed_steps,
            utd=0.02,
            batch_size=16,
            eval_freq=steps,
            eval_episodes=1,
            eval_max_steps=10,
            checkpoint_freq=steps,
            diagnostics=False,
            run_dir=str(run_dir),
            wandb_mode="disabled",
            progress=False,
            planner=SMALL_PLANNER,
        )
    )
    loop = Loop(cfg, agent=agent, tasks=[task])
    try:
        return loop, loop.run()
    finally:
        loop.shutdown()


@pytest.mark.parametrize("new_task", list(NEW))
def test_finetune_from_the_import_on_a_task_outside_mt80(run_dir, mt80, tmp_path, new_task):
    agent, _ = agent_from_checkpoint(run_dir)
    assert new_task not in mt80.names
    grown = envs.load_task_set(",".join(list(mt80.names) + [new_task]))  # pads the new task to mt80's dims
    (tid,) = agent.add_tasks(
        grown.action_masks()[80:],
        [discount_from_episode_length(L) for L in grown.episode_lengths()[80:]],
        init="nearest",
        nearest=[mt80.index(NEW[new_task])],
    )
    agent.set_trainable(["task_embedding", "dynamics", "reward", "q", "policy"])  # finetune_params-style
    encoder_before = [p.clone() for p in agent.model.encoder.parameters()]
    row_before = agent.model.task_emb.weight[tid].clone()
    loop, summary = _finetune(agent, list(grown.names), new_task, tmp_path / "ft", steps=520, seed_steps=500)
    assert summary["env_steps"] >= 520 and summary["updates"] >= 10
    assert summary["last_eval_return"] is not None
    assert not torch.equal(agent.model.task_emb.weight[tid], row_before)  # the new body's embedding trained
    assert all(
        torch.equal(a, b) for a, b in zip(agent.model.encoder.parameters(), encoder_before, strict=False)
    )  # frozen
    # the finetuned run directory reloads with 81 tasks, the new one last
    tuned, extra = agent_from_checkpoint(tmp_path / "ft")
    assert tuned.cfg.model.num_tasks == 81 and extra["tasks"][-1] == new_task
    assert tuned.trainable_groups() == ["dynamics", "reward", "q", "policy", "task_embedding"]  # still frozen encoder
    from distributed.replay.reader import ShardReader

    rows = ShardReader(tmp_path / "ft" / "replay" / "shard-000").sample(64, 1, np.random.default_rng(0))
    assert set(rows["task"].tolist()) == {tid}  # only the new task was collected
    assert np.all(rows["action"][..., grown.tasks[-1].action_dim :] == 0)  # its padded action dims stayed 0


def test_launch_train_resumes_the_imported_directory(tmp_path):
    """`launch/train.py task=mt30 model_size=1 run_dir=<import>` continues from the imported weights."""
    mt30 = envs.load_task_set("mt30")
    state = current_layout(dims("mt30", 1), [t.action_dim for t in mt30.tasks], seed=4)
    out = import_tdmpc2_checkpoint(state, "mt30", 1, tmp_path / "mt30-1")
    loop = Loop(
        compose(
            "train", ["task=mt30", "model_size=1", f"run_dir={out}", "steps=1", "wandb_mode=disabled", "progress=false"]
        )
    )
    try:
        loop.start()
        imported, _ = agent_from_checkpoint(out)
        agent = loop.parts.agent
        assert loop.env_steps == 0 and agent.cfg.model.task_dim == 96
        assert all(
            torch.equal(a, b)
            for a, b in zip(agent.model.state_dict().values(), imported.model.state_dict().values(), strict=False)
        )
    finally:
        loop.shutdown()
