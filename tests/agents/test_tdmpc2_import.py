"""TD-MPC2 checkpoints map onto our WorldModel: both key layouts reproduce TD-MPC2's own forward pass
(computed here from the raw tensors), padded action dims follow the file's masks, the size rules
hold at every published size, and bad files fail with errors that name the problem."""

import math

import pytest
import torch

from agents.agent import Agent
from agents.config import AgentConfig, PlannerConfig
from agents.tdmpc2_import import (
    TDMPC2CheckpointError,
    check_action_masks,
    check_architecture,
    expected_architecture,
    load_into_world_model,
    load_tdmpc2_file,
    model_config,
    parse_tdmpc2_state,
)
from agents.testing.tdmpc2_checkpoints import (
    TASK_SETS,
    current_layout,
    dims,
    masks_from_dims,
    older_layout,
    reference_forward,
)
from agents.world_model import WorldModel

torch.set_num_threads(1)
# mt80's action dims in TD-MPC2's task order: 30 dm_control tasks, then 50 Meta-World tasks (4 dims)
MT80_ACTION_DIMS = [6, 6, 6, 6, 2, 2, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 5, 4, 4, 6, 6, 6, 6, 6, 6, 4, 3, 3, 2, 1] + [4] * 50
TOL = 1e-5


def _arch(task_set, size):
    T, O, A = TASK_SETS[task_set]
    return expected_architecture(task_set, size, num_tasks=T, obs_dim=O, action_dim=A)


@pytest.fixture(scope="module")
def mt80_1m():
    return current_layout(dims("mt80", 1), MT80_ACTION_DIMS, seed=0)


def _imported(state, masks=None):
    w = parse_tdmpc2_state(state)
    model = WorldModel(model_config(w, 1), masks if w.action_masks is None else None)
    load_into_world_model(model, w)
    return w, model.eval()


def _inputs(n=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    task = torch.tensor([0, 3, 6, 16, 17, 26, 29, 30, 45, 79, 12, 7])[:n]
    return torch.randn(n, 39, generator=g), torch.rand(n, 6, generator=g) * 2 - 1, task


@pytest.mark.parametrize("layout", ["current", "older"])
def test_both_layouts_reproduce_tdmpc2s_forward_pass(mt80_1m, layout):
    state = mt80_1m if layout == "current" else older_layout(mt80_1m)
    w, model = _imported(state, masks=masks_from_dims(MT80_ACTION_DIMS, 6))
    assert w.layout == layout
    obs, action, task = _inputs()
    ref = reference_forward(mt80_1m["model"], obs, action, task)
    with torch.no_grad():
        z = model.encode(obs, task)
        got = {
            "z": z,
            "next": model.next(z, action, task),
            "reward": model.reward(z, action, task),
            "q": model.Q(z, action, task, mode="all"),
            "target_q": model.Q(z, action, task, mode="all", target=True),
            "pi_mean": model.pi(z, task)[1]["mean"],
        }
    assert got["q"].shape == (2, 12, 101)
    for key, expected in ref.items():
        assert torch.allclose(got[key], expected, atol=TOL, rtol=0), (key, (got[key] - expected).abs().max())
    # the online and target heads really differ in the file, so each one was mapped to its own place
    assert not torch.allclose(ref["q"], ref["target_q"])
    assert model.cfg.log_std_min == -10.0 and model.cfg.log_std_max == 2.0


def test_an_older_file_without_target_heads_gets_them_from_the_online_ones(mt80_1m):
    """TD-MPC2 users met published files with no `_target_Qs.params.*` (its issue #11): the target
    ensemble starts as a copy of the online one, as TD-MPC2 initialises it."""
    older = {k: v for k, v in older_layout(mt80_1m)["model"].items() if not k.startswith("_target_Qs.")}
    w, model = _imported({"model": older}, masks=masks_from_dims(MT80_ACTION_DIMS, 6))
    assert w.target_q == "online copy"
    obs, action, task = _inputs()
    ref = reference_forward(mt80_1m["model"], obs, action, task)
    with torch.no_grad():
        z = model.encode(obs, task)
        target = model.Q(z, action, task, mode="all", target=True)
    assert torch.allclose(target, ref["q"], atol=TOL, rtol=0)
    assert parse_tdmpc2_state(older_layout(mt80_1m)).target_q == "file"


def test_padded_action_dims_follow_the_checkpoints_masks(mt80_1m):
    state = {"model": dict(mt80_1m["model"])}
    masks = state["model"]["_action_masks"].clone()
    masks[0] = torch.tensor([1.0, 1.0, 0, 0, 0, 0])  # a file whose task 0 drives 2 of 6 dims
    state["model"]["_action_masks"] = masks
    w, model = _imported(state)
    assert torch.equal(model.action_masks, masks)
    obs, action, task = _inputs()
    with torch.no_grad():
        act, info = model.pi(model.encode(obs, task), task)
    assert torch.all(act[masks[task] == 0] == 0) and torch.all(info["mean"][masks[task] == 0] == 0)
    assert torch.all(act[masks[task] == 1] != 0)
    # planning with the imported model: the executed action never drives a padded dim
    cfg = AgentConfig(
        model=model.cfg,
        discounts=(0.99,) * 80,
        planner=PlannerConfig(num_samples=32, num_elites=4, num_pi_trajs=4, iterations=2),
    )
    agent = Agent(cfg, action_masks=masks)
    agent.model.load_state_dict(model.state_dict())
    tasks = torch.tensor([0, 6, 30, 16])
    actions, _ = agent.act(obs[:4], tasks, agent.new_planner_state(4), eval_mode=True)
    assert torch.all(actions[masks[tasks] == 0] == 0) and actions.abs().max() <= 1
    # masks that disagree with the task set are refused by name
    with pytest.raises(TDMPC2CheckpointError, match=r"walker-stand \(file 2 dims, task set 6\)"):
        check_action_masks(masks, masks_from_dims(MT80_ACTION_DIMS, 6), ["walker-stand"] + ["t"] * 79)


@pytest.mark.parametrize("task_set", ["mt30", "mt80"])
def test_every_published_size_has_tdmpc2s_shapes_and_size_rules(task_set):
    """Real-size files as shapes only (meta tensors): parsing infers TD-MPC2's architecture, which is
    the one the size rules expect, and the parameter counts are the published ones."""
    published = {1: 1.0, 5: 5.0, 19: 19.0, 48: 48.0, 317: 317.0}
    for size in published:
        d = dims(task_set, size)
        state = current_layout(d, [1] * d["T"], device="meta")
        w = parse_tdmpc2_state(state)
        expected = _arch(task_set, size)
        check_architecture(w.arch, expected, f"task_set={task_set} model_size={size}")
        assert (w.arch.latent_dim, w.arch.task_dim) == (d["L"], d["D"])
        n = sum(
            math.prod(v.shape)
            for k, v in state["model"].items()
            if isinstance(v, torch.Tensor) and not k.startswith(("_target", "_detach", "_action", "log_std"))
        )
        if (task_set, size) == ("mt30", 19):  # TD-MPC2: "this checkpoint is slightly smaller" (latent 512)
            assert 15e6 < n < 19e6
        elif size == 1:
            assert 0.9e6 < n < 1.5e6
        else:
            assert n == pytest.approx(published[size] * 1e6, rel=0.08)  # nominal sizes
    assert (_arch("mt30", 19).latent_dim, _arch("mt30", 5).task_dim, _arch("mt30", 1).task_dim) == (512, 64, 96)
    assert {_arch("mt80", s).task_dim for s in published} == {96}


def test_a_checkpoint_of_another_size_or_task_set_names_the_difference(mt80_1m):
    w = parse_tdmpc2_state(mt80_1m)
    candidates = {f"task_set={t} model_size={s}": _arch(t, s) for t in TASK_SETS for s in (1, 5, 19, 48, 317)}
    with pytest.raises(
        TDMPC2CheckpointError,
        match=r"latent_dim: file has 128, task_set=mt80 model_size=5 expects "
        r"512.*matches task_set=mt80 model_size=1",
    ):
        check_architecture(w.arch, _arch("mt80", 5), "task_set=mt80 model_size=5", candidates)
    with pytest.raises(
        TDMPC2CheckpointError,
        match=r"num_tasks: file has 80, task_set=mt30 model_size=1 expects 30.*"
        r"obs_dim: file has 39.*expects 24",
    ):
        check_architecture(w.arch, _arch("mt30", 1), "task_set=mt30 model_size=1", candidates)
    with pytest.raises(ValueError, match="not a TD-MPC2 size"):
        expected_architecture("mt80", "tiny", num_tasks=80, obs_dim=39, action_dim=6)
    with pytest.raises(ValueError, match="mt30 and mt80 only"):
        expected_architecture("dmc-all", 5, num_tasks=80, obs_dim=39, action_dim=6)


def test_single_task_missing_misshaped_and_mixed_files_are_named(mt80_1m):
    model = mt80_1m["model"]
    # a single-task checkpoint has no task embedding (and no task columns in any input)
    single = {k: v for k, v in model.items() if k not in ("_task_emb.weight", "_action_masks")}
    for key in [k for k in single if k.endswith(("0.weight",)) and isinstance(single[k], torch.Tensor)]:
        v = single[key]
        keep = [i for i in range(v.shape[-1]) if not (39 <= i < 135 if key.startswith("_encoder") else 128 <= i < 224)]
        single[key] = v[..., keep]
    w = parse_tdmpc2_state(single, multitask=False)
    assert (w.arch.num_tasks, w.arch.task_dim, w.arch.obs_dim) == (1, 0, 39)
    with pytest.raises(TDMPC2CheckpointError, match="single-task TD-MPC2 checkpoint.*asks for a multitask one"):
        check_architecture(w.arch, _arch("mt80", 1), "task_set=mt80 model_size=1")
    with pytest.raises(TDMPC2CheckpointError, match="single-task TD-MPC2 checkpoint"):
        parse_tdmpc2_state(single)
    # TD-MPC2's earliest single-task files nest each layer (`_dynamics.0.0.weight`): named as single-task too
    earliest = {"_encoder.state.0.weight": torch.zeros(256, 24), "_dynamics.0.0.weight": torch.zeros(512, 518)}
    with pytest.raises(TDMPC2CheckpointError, match="single-task TD-MPC2 checkpoint"):
        parse_tdmpc2_state({"model": earliest})
    missing = {k: v for k, v in model.items() if k != "_reward.1.ln.bias"}
    with pytest.raises(TDMPC2CheckpointError, match=r"lacks 1 key.*_reward\.1\.ln\.bias"):
        parse_tdmpc2_state(missing)
    older = older_layout(mt80_1m)["model"]
    with pytest.raises(TDMPC2CheckpointError, match=r"older layout.*_target_Qs_params\.2\.bias"):
        parse_tdmpc2_state({k: v for k, v in older.items() if k != "_target_Qs.params.9"})
    bad = dict(model, **{"_pi.1.weight": torch.zeros(384, 380)})
    with pytest.raises(TDMPC2CheckpointError, match=r"_pi\.1\.weight is \(384, 380\), expected \(384, 384\)"):
        parse_tdmpc2_state(bad)
    with pytest.raises(TDMPC2CheckpointError, match="mixes TD-MPC2's two Q-ensemble key layouts"):
        parse_tdmpc2_state(dict(model, **{"_Qs.params.3": older["_Qs.params.3"]}))
    edited = dict(model, **{"_detach_Qs_params.1.bias": model["_Qs.params.1.bias"] + 1})
    with pytest.raises(TDMPC2CheckpointError, match=r"_detach_Qs_params\.1\.bias differs from _Qs\.params\.1\.bias"):
        parse_tdmpc2_state(edited)
    with pytest.raises(TDMPC2CheckpointError, match="pixel-based"):
        parse_tdmpc2_state(dict(model, **{"_encoder.rgb.2.weight": torch.zeros(1)}))
    with pytest.raises(TDMPC2CheckpointError, match=r"unexpected keys.*_extra_head\.0\.weight"):
        parse_tdmpc2_state(dict(model, **{"_extra_head.0.weight": torch.zeros(1)}))
    diverged = dict(model, **{"_dynamics.1.bias": torch.full((384,), float("nan"))})
    with pytest.raises(TDMPC2CheckpointError, match=r"\['_dynamics\.1\.bias'\] hold NaN"):
        parse_tdmpc2_state(diverged)
    with pytest.raises(TDMPC2CheckpointError, match=r"_action_masks should be \[80, 6\]"):
        parse_tdmpc2_state(dict(model, _action_masks=torch.ones(80, 5)))


def test_unreadable_files_fail_clearly(tmp_path, mt80_1m):
    with pytest.raises(FileNotFoundError, match="no TD-MPC2 checkpoint file"):
        load_tdmpc2_file(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(TDMPC2CheckpointError, match=r"does not load with torch.load\(weights_only=True\)"):
        load_tdmpc2_file(garbage)
    pickled = tmp_path / "pickled.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "cfg": Exception("an arbitrary object")}, pickled)
    with pytest.raises(TDMPC2CheckpointError, match="weights_only"):
        load_tdmpc2_file(pickled)
    empty = tmp_path / "empty.pt"
    torch.save({"step": 3}, empty)
    with pytest.raises(TDMPC2CheckpointError, match="holds no state dict of tensors"):
        load_tdmpc2_file(empty)
    saved = tmp_path / "ok.pt"
    torch.save(mt80_1m, saved)
    assert parse_tdmpc2_state(load_tdmpc2_file(saved)).arch == _arch("mt80", 1)


def test_the_mapping_module_imports_no_env_ray_or_zarr_package():
    import subprocess
    import sys

    code = (
        "import sys, agents.tdmpc2_import; "
        "print(sorted(m for m in ('ray', 'zarr', 'envs', 'dm_control', 'metaworld', 'gymnasium', 'mujoco') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
