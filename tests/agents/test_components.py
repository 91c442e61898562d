import pytest
import torch

from agents.config import make_agent_config, model_preset
from agents.layers import SimNorm
from agents.regression import TwoHot, symexp, symlog
from agents.world_model import WorldModel


def test_simnorm_groups_sum_to_one_and_are_positive():
    x = torch.randn(7, 64) * 5
    y = SimNorm(8)(x).view(7, 8, 8)
    assert torch.allclose(y.sum(-1), torch.ones(7, 8), atol=1e-6)
    assert (y > 0).all()
    # groups are independent: changing one group leaves the others untouched
    x2 = x.clone()
    x2[:, :8] += 3.0
    y2 = SimNorm(8)(x2).view(7, 8, 8)
    assert torch.allclose(y[:, 1:], y2[:, 1:])


def test_simnorm_rejects_bad_dims():
    with pytest.raises(ValueError, match="multiple of the group size"):
        SimNorm(8)(torch.randn(2, 12))


def test_symlog_symexp_inverse():
    x = torch.tensor([-1e3, -5.0, -0.1, 0.0, 0.3, 7.0, 2e3])
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5)


def test_two_hot_round_trip_in_symlog_space():
    th = TwoHot(101, -10, 10)
    x = torch.tensor([-500.0, -3.3, -0.01, 0.0, 0.123, 1.0, 42.0, 900.0]).unsqueeze(-1)
    probs = th.encode(x)
    assert probs.shape == (8, 101)
    assert torch.allclose(probs.sum(-1), torch.ones(8))
    assert ((probs > 0).sum(-1) <= 2).all()
    # logits = log probs decode back to the value
    decoded = th.decode(torch.log(probs + 1e-30))
    assert torch.allclose(decoded, x, rtol=1e-4, atol=1e-5)
    # the expected bin in symlog space is exactly symlog(x)
    bins = torch.linspace(-10, 10, 101)
    assert torch.allclose((probs * bins).sum(-1), symlog(x).squeeze(-1), atol=1e-5)


def test_two_hot_clamps_out_of_range_values():
    th = TwoHot(101, -10, 10)
    big = torch.tensor([[1e9]])
    assert th.encode(big)[0, -1] == 1.0


def test_model_presets_have_published_sizes():
    sizes = {}
    for name in ("1", "5", "19", "48"):
        cfg = make_agent_config(obs_dim=39, action_dim=6, episode_lengths=[500] * 80, model_size=name)
        sizes[name] = WorldModel(cfg.model).num_parameters() / 1e6
    assert 1.0 < sizes["1"] < 2.0
    assert 4.5 < sizes["5"] < 6.5
    assert 17 < sizes["19"] < 21
    assert 45 < sizes["48"] < 52


def test_unknown_model_size_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown model_size 7; valid sizes"):
        model_preset(7)


def test_unknown_config_key_names_the_closest():
    with pytest.raises(ValueError, match="num_samples"):
        make_agent_config(obs_dim=3, action_dim=1, episode_lengths=[500], planner={"num_sample": 10})


def test_task_embedding_has_max_norm_one():
    cfg = make_agent_config(obs_dim=5, action_dim=2, episode_lengths=[500] * 3, model_size="tiny")
    m = WorldModel(cfg.model)
    with torch.no_grad():
        m.task_emb.weight.mul_(100.0)
    m.encode(torch.randn(3, 5), torch.arange(3))
    assert (m.task_emb.weight.norm(dim=-1) <= 1.0 + 1e-5).all()


def test_policy_samples_are_masked():
    cfg = make_agent_config(obs_dim=5, action_dim=4, episode_lengths=[500, 500], model_size="tiny")
    masks = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    m = WorldModel(cfg.model, masks)
    with torch.no_grad():  # a policy whose raw outputs are far from zero on every dim
        m.policy[-1].bias.fill_(1.5)
    z = m.encode(torch.randn(64, 5), torch.ones(64, dtype=torch.long))
    a, info = m.pi(z, torch.ones(64, dtype=torch.long))
    assert (a[:, 2:] == 0).all() and (info["mean"][:, 2:] == 0).all()
    assert (a[:, :2].abs() > 0).all()
    a0, info0 = m.pi(z, torch.zeros(64, dtype=torch.long))
    assert (a0[:, 2:].abs() > 0).all()
    # the entropy bonus scales with the number of active dims
    ratio = (info["scaled_entropy"] / info["entropy"]).unique()
    assert torch.allclose(ratio, torch.tensor([2.0]))
