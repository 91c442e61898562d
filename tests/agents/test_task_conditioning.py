"""Descriptor task conditioning, adding unseen tasks, and finetunes that train only what they say."""

import numpy as np
import pytest
import torch

from agents.agent import Agent
from agents.batch import Batch
from agents.checkpoint import agent_from_checkpoint, save_checkpoint
from agents.config import make_agent_config

O, A, T, DD = 5, 3, 3, 6


def _descriptors(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, DD)).astype(np.float32)


def _agent(mode="both", num_tasks=T, seed=0):
    torch.manual_seed(seed)
    cfg = make_agent_config(
        obs_dim=O,
        action_dim=A,
        episode_lengths=[500] * num_tasks,
        model_size="tiny",
        model={"task_conditioning": mode},
        planner=dict(num_samples=32, num_elites=4, num_pi_trajs=4, iterations=2),
        task_descriptors=_descriptors(num_tasks),
    )
    return Agent(cfg, action_masks=torch.ones(num_tasks, A))


def _batch(task_id, H=3, B=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(H + 1, B, O, generator=g)
    action = torch.rand(H, B, A, generator=g) * 2 - 1
    reward = (obs[:-1, :, 0] * action[..., 0]).tanh()
    return Batch(
        obs=obs,
        action=action,
        reward=reward,
        terminated=torch.zeros(H, B),
        task=torch.full((B,), task_id, dtype=torch.long),
        action_mask=torch.ones(B, A),
    )


def _params(agent):
    return {k: v.detach().clone() for k, v in agent.model.named_parameters()} | {
        f"target.{k}": v.detach().clone() for k, v in agent.model.target_qs.named_parameters()
    }


@pytest.mark.parametrize("mode", ["descriptor", "both"])
def test_unseen_task_gets_the_descriptor_embedding_without_a_training_step(mode):
    agent = _agent(mode)
    before = _params(agent)
    new = _descriptors(2, seed=7)
    ids = agent.add_tasks(np.ones((2, A)), [0.99, 0.98], new, init="descriptor")
    assert ids == [T, T + 1] and agent.cfg.model.num_tasks == T + 2 and agent.updates == 0
    m = agent.model
    emb = m.all_task_embeddings()
    expected = m.descriptor_embedding(torch.as_tensor(new))
    expected = expected / expected.norm(dim=-1, keepdim=True).clamp(min=1.0)
    torch.testing.assert_close(emb[T:], expected)
    assert not torch.allclose(emb[T], emb[T + 1])  # different bodies, different embeddings
    assert emb.norm(dim=-1).max() <= 1.0 + 1e-5
    after = _params(agent)
    for k, v in before.items():  # nothing trained; the table only grew
        torch.testing.assert_close(after[k][: v.shape[0]] if k == "task_emb.weight" else after[k], v)
    assert agent.cfg.discounts[-2:] == (0.99, 0.98)
    action, _ = agent.act(torch.randn(2, O), torch.tensor(ids), agent.new_planner_state(2))
    assert action.shape == (2, A) and torch.isfinite(action).all()


def test_nearest_and_mean_inits_reproduce_training_embeddings():
    for mode in ("table", "both"):
        agent = _agent(mode)
        old = agent.model.all_task_embeddings().detach()
        ids = agent.add_tasks(np.ones((2, A)), [0.99] * 2, _descriptors(2, seed=3), init="nearest", nearest=[2, 0])
        emb = agent.model.all_task_embeddings().detach()
        torch.testing.assert_close(emb[ids], old[[2, 0]], atol=1e-5, rtol=0)
        agent = _agent(mode)
        (i,) = agent.add_tasks(np.ones((1, A)), [0.99], _descriptors(1, seed=3), init="mean")
        torch.testing.assert_close(agent.model.all_task_embeddings()[i].detach(), old.mean(0), atol=1e-5, rtol=0)


def test_add_tasks_rejects_what_the_conditioning_cannot_do():
    with pytest.raises(ValueError, match="init='descriptor' needs a task_conditioning with a descriptor or language"):
        _agent("table").add_tasks(np.ones((1, A)), [0.99], _descriptors(1), init="descriptor")
    with pytest.raises(ValueError, match="needs a per-task table"):
        _agent("descriptor").add_tasks(np.ones((1, A)), [0.99], _descriptors(1), init="nearest", nearest=[0])
    with pytest.raises(ValueError, match="one existing task id"):
        _agent("both").add_tasks(np.ones((1, A)), [0.99], _descriptors(1), init="nearest", nearest=[T])
    with pytest.raises(ValueError, match="new tasks need descriptors"):
        _agent("both").add_tasks(np.ones((1, A)), [0.99], None)
    with pytest.raises(ValueError, match="single-task"):
        _agent("table", num_tasks=1).add_tasks(np.ones((1, A)), [0.99], None, init="mean")
    with pytest.raises(ValueError, match="needs task descriptors"):
        make_agent_config(
            obs_dim=O, action_dim=A, episode_lengths=[500] * 2, model_size="tiny", model={"task_conditioning": "both"}
        )
    with pytest.raises(ValueError, match="task_conditioning must be one of"):
        make_agent_config(
            obs_dim=O, action_dim=A, episode_lengths=[500] * 2, model_size="tiny", model={"task_conditioning": "lookup"}
        )


@pytest.mark.parametrize(
    "groups, changed",
    [
        (["task_embedding"], {"task_emb.weight"}),
        (["policy"], {"policy"}),
        (["descriptor_map", "task_embedding"], {"descriptor_map", "task_emb.weight"}),
    ],
)
def test_finetune_touches_only_the_configured_parameters(groups, changed):
    agent = _agent("both")
    (new,) = agent.add_tasks(np.ones((1, A)), [0.99], _descriptors(1, seed=5), init="descriptor")
    agent.set_trainable(groups)
    before = _params(agent)
    for k in range(5):
        agent.update(_batch(new, seed=k))
    after = _params(agent)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved, "the configured parameters did not train"
    assert all(any(k.startswith(c) for c in changed) for k in moved), f"trained outside {groups}: {moved}"
    if "task_emb.weight" in moved:  # the new task's row only: other tasks' embeddings are untouched
        torch.testing.assert_close(after["task_emb.weight"][:T], before["task_emb.weight"][:T], atol=0, rtol=0)
        assert not torch.equal(after["task_emb.weight"][new], before["task_emb.weight"][new])
    assert all(p.grad is None for p in agent.model.parameters())  # no gradient left over for the next step


def test_set_trainable_all_restores_full_training_and_rejects_unknown_groups():
    agent = _agent("both")
    agent.set_trainable(["policy"])
    agent.set_trainable("all")
    assert all(p.requires_grad for p in agent.model.qs.parameters())
    assert sum(len(g["params"]) for g in agent.optim.param_groups) == len(
        [p for n, p in agent.model.named_parameters() if not n.startswith(("policy", "target_qs"))]
    )
    with pytest.raises(ValueError, match="unknown parameter groups"):
        agent.set_trainable(["heads"])
    with pytest.raises(ValueError, match="no \\['descriptor_map'\\] parameters"):
        _agent("table").set_trainable(["descriptor_map"])


def test_a_finetunes_checkpoint_reloads_with_its_frozen_groups(tmp_path):
    agent = _agent("table")
    (new,) = agent.add_tasks(np.ones((1, A)), [0.99], init="mean")
    agent.set_trainable(["task_embedding", "q"])
    agent.update(_batch(new))
    save_checkpoint(tmp_path, agent)
    loaded, _ = agent_from_checkpoint(tmp_path)
    assert loaded.trainable_groups() == ["q", "task_embedding"]
    assert not any(p.requires_grad for p in loaded.model.encoder.parameters())
    torch.testing.assert_close(loaded.optim.state_dict()["state"], agent.optim.state_dict()["state"])


def _agent_with(pi_task_grad, mode="table"):
    torch.manual_seed(0)
    cfg = make_agent_config(
        obs_dim=O,
        action_dim=A,
        episode_lengths=[500] * T,
        model_size="tiny",
        model={"task_conditioning": mode},
        optim={"pi_task_grad": pi_task_grad},
        planner=dict(num_samples=32, num_elites=4, num_pi_trajs=4, iterations=2),
        task_descriptors=_descriptors(T),
    )
    return Agent(cfg, action_masks=torch.ones(T, A))


def test_policy_loss_gradient_on_the_task_embedding_is_dropped_with_drop():
    """optim.pi_task_grad=drop: the policy loss's gradient on the embedding is never applied."""
    agent = _agent_with("drop")
    agent.update(_batch(0))
    assert all(p.grad is None for p in agent.model.parameters())


def test_policy_loss_gradient_on_the_task_embedding_reaches_the_next_world_model_step_as_in_tdmpc2():
    """The default (TD-MPC2's): after an update only the task conditioning holds a gradient (the policy
    loss's, on the rows of the batch's task); the next world-model step applies it on top of its own."""
    keep, drop = _agent_with("keep"), _agent_with("drop")
    assert keep.cfg.optim.pi_task_grad == "keep"  # the default config's
    keep.update(_batch(1))
    drop.update(_batch(1))
    with_grad = {n for n, p in keep.model.named_parameters() if p.grad is not None}
    assert with_grad == {"task_emb.weight"}
    g = keep.model.task_emb.weight.grad
    assert g[1].abs().sum() > 0 and g[0].abs().sum() == 0 and g[2:].abs().sum() == 0
    # the same start and the same next batch: the step moves task 1's row differently, and only by that
    torch.testing.assert_close(keep.model.task_emb.weight, drop.model.task_emb.weight)
    torch.manual_seed(3)
    keep.update(_batch(0, seed=1))
    torch.manual_seed(3)
    drop.update(_batch(0, seed=1))
    assert not torch.allclose(keep.model.task_emb.weight[1], drop.model.task_emb.weight[1])
    torch.testing.assert_close(keep.model.task_emb.weight[2:], drop.model.task_emb.weight[2:])


def test_a_pending_policy_gradient_survives_a_checkpoint(tmp_path):
    agent = _agent_with("keep")
    agent.update(_batch(1))
    save_checkpoint(tmp_path, agent)
    loaded, _ = agent_from_checkpoint(tmp_path)
    torch.testing.assert_close(loaded.model.task_emb.weight.grad, agent.model.task_emb.weight.grad)


@pytest.mark.parametrize("mode", ["descriptor", "both"])
def test_descriptor_model_trains_and_round_trips_through_a_checkpoint(tmp_path, mode):
    agent = _agent(mode)
    first = agent.update(_batch(1))
    for k in range(30):
        last = agent.update(_batch(k % T, seed=k % 2))
    assert np.isfinite(list(last.values())).all() and last["reward_loss"] < first["reward_loss"]
    if mode == "both":
        assert "task_offset_sq" in last
    agent.add_tasks(np.ones((1, A)), [0.97], _descriptors(1, seed=9))
    save_checkpoint(tmp_path, agent)
    loaded, _ = agent_from_checkpoint(tmp_path)
    assert loaded.cfg.model == agent.cfg.model and loaded.cfg.discounts == agent.cfg.discounts
    torch.testing.assert_close(loaded.model.all_task_embeddings(), agent.model.all_task_embeddings())


def test_planning_with_cached_descriptor_embeddings_matches_uncached(monkeypatch):
    import contextlib

    agent = _agent("both")
    for k in range(3):
        agent.update(_batch(k % T, seed=k))
    obs, task = torch.randn(4, O), torch.tensor([0, 1, 2, 1])
    cached, _ = agent.act(obs, task, agent.new_planner_state(4, seed=3))
    calls = []
    real = agent.model.task_embedding
    monkeypatch.setattr(agent.model, "task_embedding", lambda t: calls.append(1) or real(t))
    monkeypatch.setattr(agent.model, "cached_task_embeddings", contextlib.nullcontext)
    uncached, _ = agent.act(obs, task, agent.new_planner_state(4, seed=3))
    torch.testing.assert_close(cached, uncached)
    assert len(calls) > 10  # without the cache the map runs at every model call


# -- language: text embeddings as task features (synthetic unit vectors here; the encoder is embodiments') --
E = 16
LANGUAGE_MODES = ["language", "descriptor+language", "language+table", "descriptor+language+table"]


def _language(n, seed=0):
    x = np.random.default_rng(100 + seed).normal(size=(n, E)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _language_agent(mode, num_tasks=T, size="tiny"):
    torch.manual_seed(0)
    cfg = make_agent_config(
        obs_dim=O,
        action_dim=A,
        episode_lengths=[500] * num_tasks,
        model_size=size,
        model={"task_conditioning": mode},
        planner=dict(num_samples=32, num_elites=4, num_pi_trajs=4, iterations=2),
        task_descriptors=_descriptors(num_tasks),
        task_language=_language(num_tasks),
        language_encoder="test-encoder 1.0",
    )
    return Agent(cfg, action_masks=torch.ones(num_tasks, A))


@pytest.mark.parametrize("mode", LANGUAGE_MODES)
def test_language_model_trains_saves_loads_and_plans(tmp_path, mode):
    agent = _language_agent(mode)
    mc = agent.cfg.model
    assert mc.uses_language and mc.feature_dim == E + (DD if "descriptor" in mode else 0)
    assert mc.uses_table == ("table" in mode)
    first = agent.update(_batch(1))
    for k in range(20):
        last = agent.update(_batch(k % T, seed=k % 2))
    assert np.isfinite(list(last.values())).all() and last["reward_loss"] < first["reward_loss"]
    assert ("task_offset_sq" in last) == ("table" in mode)
    emb = agent.model.all_task_embeddings()
    assert emb.norm(dim=-1).max() <= 1.0 + 1e-5 and not torch.allclose(emb[0], emb[1])
    save_checkpoint(tmp_path, agent)
    loaded, _ = agent_from_checkpoint(tmp_path)  # the text embeddings come back from the checkpoint, no encoder
    assert loaded.cfg.model == mc and loaded.cfg.model.language_encoder == "test-encoder 1.0"
    torch.testing.assert_close(loaded.model.task_language, torch.as_tensor(_language(T)))
    torch.testing.assert_close(loaded.model.all_task_embeddings(), emb)
    obs, task = torch.randn(3, O), torch.tensor([0, 2, 1])
    a1, _ = agent.act(obs, task, agent.new_planner_state(3, seed=4), eval_mode=True)
    a2, _ = loaded.act(obs, task, loaded.new_planner_state(3, seed=4), eval_mode=True)
    torch.testing.assert_close(a1, a2)


@pytest.mark.parametrize("mode", LANGUAGE_MODES)
def test_unseen_task_gets_the_map_embedding_of_its_text(mode):
    agent = _language_agent(mode)
    text = _language(2, seed=7)
    desc = _descriptors(2, seed=7)
    ids = agent.add_tasks(np.ones((2, A)), [0.99, 0.99], desc, language=text, init="descriptor")
    m = agent.model
    expected = m.descriptor_embedding(torch.as_tensor(desc), torch.as_tensor(text))
    expected = expected / expected.norm(dim=-1, keepdim=True).clamp(min=1.0)
    torch.testing.assert_close(m.all_task_embeddings()[ids], expected)
    assert agent.cfg.model.task_language[-2:] == tuple(tuple(float(x) for x in r) for r in text)
    # another text for the same body moves the embedding: the text is read, not ignored
    other = _language_agent(mode)
    (j,) = other.add_tasks(np.ones((1, A)), [0.99], desc[:1], language=_language(1, seed=8), init="descriptor")
    assert not torch.allclose(other.model.all_task_embeddings()[j], m.all_task_embeddings()[ids[0]])
    with pytest.raises(ValueError, match="new tasks need text embeddings"):
        _language_agent(mode).add_tasks(np.ones((1, A)), [0.99], desc[:1], init="descriptor")
    with pytest.raises(ValueError, match="text embeddings have 3 dims"):
        _language_agent(mode).add_tasks(np.ones((1, A)), [0.99], desc[:1], language=np.ones((1, 3)))


def test_language_needs_its_embeddings_and_encoder_name():
    kw = dict(
        obs_dim=O, action_dim=A, episode_lengths=[500] * 2, model_size="tiny", model={"task_conditioning": "language"}
    )
    with pytest.raises(ValueError, match="needs the tasks' text embeddings"):
        make_agent_config(**kw)
    with pytest.raises(ValueError, match="needs the tasks' text embeddings"):
        make_agent_config(**kw, task_language=_language(2))  # no encoder name: whose embeddings?
    with pytest.raises(ValueError, match="one embedding per task"):
        make_agent_config(**kw, task_language=_language(3), language_encoder="x")


@pytest.mark.parametrize("size", ["1", "5", "19", "48", "317"])
def test_language_conditioning_at_every_model_size(size):
    """Every preset takes language conditioning; the map's output is the preset's task embedding."""
    for mode in LANGUAGE_MODES:
        cfg = make_agent_config(
            obs_dim=O,
            action_dim=A,
            episode_lengths=[500] * T,
            model_size=size,
            model={"task_conditioning": mode},
            task_descriptors=_descriptors(T),
            task_language=_language(T),
            language_encoder="test-encoder 1.0",
        )
        assert cfg.model.uses_language and cfg.model.feature_dim >= E
    if size in ("1", "5"):  # the larger presets' weights take GBs; their config is what differs
        from agents.world_model import WorldModel

        m = WorldModel(cfg.model)
        assert m.descriptor_map[0].in_features == DD + E
        assert m.all_task_embeddings().shape == (T, cfg.model.task_dim)
