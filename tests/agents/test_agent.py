import pytest
import torch

from agents.agent import Agent
from agents.batch import Batch
from agents.checkpoint import agent_from_checkpoint, load_checkpoint, save_checkpoint
from agents.config import make_agent_config


def _agent(num_tasks=2, model_size="tiny", obs_dim=5, action_dim=3, precision="fp32"):
    cfg = make_agent_config(
        obs_dim=obs_dim,
        action_dim=action_dim,
        episode_lengths=[500] * num_tasks,
        model_size=model_size,
        planner=dict(num_samples=32, num_elites=4, num_pi_trajs=4, iterations=2),
        precision=precision,
    )
    masks = torch.ones(num_tasks, action_dim)
    masks[-1, -1] = 0
    # bf16 runs as bf16 here even on a CPU without native bf16 (slow, but the math is what is tested)
    return Agent(cfg, action_masks=masks, native_bf16=lambda device: True)


def _batch(H=3, B=32, O=5, A=3, T=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(H + 1, B, O, generator=g)
    action = torch.rand(H, B, A, generator=g) * 2 - 1
    task = torch.randint(0, T, (B,), generator=g)
    # a learnable world: reward is a function of obs and action
    reward = (obs[:-1, :, 0] * action[..., 0]).tanh()
    return Batch(
        obs=obs, action=action, reward=reward, terminated=torch.zeros(H, B), task=task, action_mask=torch.ones(B, A)
    )


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_losses_fall_on_a_fixed_batch(precision):
    torch.manual_seed(0)
    agent = _agent(precision=precision)
    batch = _batch()
    first = agent.update(batch)
    for _ in range(100):
        last = agent.update(batch)
    assert last["reward_loss"] < 0.6 * first["reward_loss"]
    assert last["value_loss"] < 0.6 * first["value_loss"]
    assert last["consistency_loss"] < first["consistency_loss"]
    assert all(torch.isfinite(torch.tensor(v)) for v in last.values())
    assert agent.updates == 101


def test_target_network_trails_the_online_one():
    agent = _agent()
    before = [p.clone() for p in agent.model.target_qs.parameters()]
    agent.update(_batch())
    online = list(agent.model.qs.parameters())
    after = list(agent.model.target_qs.parameters())
    moved = [(a - b).abs().max() for a, b in zip(after, before, strict=False)]
    assert max(moved) > 0
    # Polyak with tau=0.01: target moved 1% of the way
    for b, a, o in zip(before, after, online, strict=False):
        assert torch.allclose(a, b + 0.01 * (o - b), atol=1e-6)
    assert not any(p.requires_grad for p in agent.model.target_qs.parameters())


def test_terminated_transitions_cut_the_bootstrap():
    agent = _agent(num_tasks=1)
    b = _batch(T=1)
    b.terminated[:] = 1.0
    b.reward[:] = 2.0
    for _ in range(150):
        agent.update(b)
    z = agent.model.encode(b.obs[0], b.task)
    q = agent.model.Q(z, b.action[0], b.task, mode="mean")
    # with termination the value is the reward (2), not 2 / (1 - gamma) = 200
    assert (q - 2.0).abs().mean() < 0.5


def test_checkpoint_round_trips_exactly(tmp_path):
    torch.manual_seed(0)
    agent = _agent()
    for _ in range(3):
        agent.update(_batch())
    save_checkpoint(tmp_path, agent, {"step": 123, "task_set": "x"})
    # loadable with weights_only=True (no pickled code)
    raw = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert raw["extra"]["step"] == 123
    restored, extra = agent_from_checkpoint(tmp_path)
    assert extra["step"] == 123 and restored.updates == 3
    for (k, a), (_, b) in zip(agent.model.state_dict().items(), restored.model.state_dict().items(), strict=False):
        assert torch.equal(a, b), k
    assert torch.equal(agent.scale.value, restored.scale.value)
    # the optimiser state came back too: the next update is identical
    batch = _batch(seed=5)
    torch.manual_seed(1)
    s1 = agent.update(batch)
    torch.manual_seed(1)
    s2 = restored.update(batch)
    assert s1 == pytest.approx(s2, rel=1e-3)  # same maths; kernels may round differently
    # and safetensors holds the same weights
    from safetensors.torch import load_file

    w = load_file(str(tmp_path / "model.safetensors"))
    saved = _agent().model  # a fresh model loads the safetensors weights as they were at save time
    saved.load_state_dict(w)
    assert torch.equal(saved.encoder[0].weight, agent_from_checkpoint(tmp_path)[0].model.encoder[0].weight)


def test_checkpoint_of_another_model_size_or_task_count_is_refused(tmp_path):
    save_checkpoint(tmp_path, _agent(num_tasks=2))
    state = load_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="num_tasks: checkpoint has 2, this run has 3"):
        _agent(num_tasks=3).load_state_dict(state["agent"])
    with pytest.raises(ValueError, match="model_size: checkpoint has 'tiny', this run has '1'"):
        _agent(num_tasks=2, model_size="1").load_state_dict(state["agent"])


def test_a_broken_checkpoint_file_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable latentfleet checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")


def test_act_returns_masked_actions_for_mixed_tasks():
    agent = _agent()
    state = agent.new_planner_state(4, seed=0)
    a, info = agent.act(torch.randn(4, 5), torch.tensor([0, 1, 0, 1]), state)
    assert a.shape == (4, 3) and (a[[1, 3], 2] == 0).all() and a.abs().max() <= 1


@pytest.mark.compile  # minutes of inductor compilation: ./scripts/test.sh -m compile tests/agents
def test_compiled_update_matches_the_eager_one():
    """compile_update: the torch.compile'd world-model loss (forward and backward) gives the eager
    losses and gradients to 1e-4 (random ops as eager's: inductor's fallback_random). Compiling
    takes 1-10 min on a loaded 2-core CPU (cold cache), hence slow."""
    import dataclasses

    cfg = _agent().cfg
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dropout=0.0))
    batch = _batch(H=1)
    stats = {}
    with torch._inductor.config.patch(fallback_random=True):
        for mode in ("off", "reduce-overhead"):  # reduce-overhead is plain compile on CPU
            torch.manual_seed(0)
            agent = Agent(dataclasses.replace(cfg, compile_update=mode))
            stats[mode] = [agent.update(batch) for _ in range(2)]
            stats[mode].append({k: v.detach().clone() for k, v in agent.model.state_dict().items()})
    for eager, compiled in zip(stats["off"][:2], stats["reduce-overhead"][:2], strict=False):
        for k in eager:
            assert compiled[k] == pytest.approx(eager[k], rel=1e-4, abs=1e-5), k
    for k, v in stats["off"][2].items():
        assert torch.allclose(stats["reduce-overhead"][2][k], v, atol=1e-5), k


def test_an_unknown_compile_mode_is_refused():
    import dataclasses

    with pytest.raises(ValueError, match="compile_update must be one of"):
        dataclasses.replace(_agent().cfg, compile_update="max-autotune")
