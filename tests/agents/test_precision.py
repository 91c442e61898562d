import warnings

import pytest
import torch

import agents.precision as precision
from agents.agent import Agent
from agents.config import make_agent_config


@pytest.fixture(autouse=True)
def fresh_warnings():
    precision._warned.clear()
    yield
    precision._warned.clear()


def _cfg(prec):
    return make_agent_config(
        obs_dim=5,
        action_dim=3,
        episode_lengths=[500, 500],
        model_size="tiny",
        planner=dict(num_samples=32, num_elites=4, num_pi_trajs=4, iterations=2),
        precision=prec,
    )


def test_bf16_without_native_support_falls_back_to_fp32_with_one_warning():
    with pytest.warns(RuntimeWarning, match="no native bf16"):
        agent = Agent(_cfg("bf16"), native_bf16=lambda device: False)
    assert agent.autocast_dtype is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second agent in the same process does not warn again
        assert Agent(_cfg("bf16"), native_bf16=lambda device: False).autocast_dtype is None
    action, _ = agent.act(torch.randn(2, 5), torch.tensor([0, 1]), agent.new_planner_state(2))
    assert action.dtype == torch.float32 and torch.isfinite(action).all()


def test_bf16_with_native_support_runs_bf16_and_fp32_never_asks():
    asked = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent = Agent(_cfg("bf16"), native_bf16=lambda device: asked.append(device) or True)
        assert agent.autocast_dtype == torch.bfloat16 and asked == [torch.device("cpu")]
        assert Agent(_cfg("fp32"), native_bf16=lambda device: asked.append(device) or True).autocast_dtype is None
    assert len(asked) == 1


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be"):
        precision.autocast_dtype_for("fp16", "cpu")


def test_detection_on_this_cpu():
    native = precision.has_native_bf16("cpu")
    assert isinstance(native, bool)
    flags = precision._cpu_flags()
    if flags is not None:
        assert native == bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    # x86 without AVX-512 has neither AVX512-BF16 nor AMX (the CPU's flags, not torch's kernel choice, which
    # ATEN_CPU_CAPABILITY can hold lower than the CPU)
    if flags is not None and "avx512f" not in flags and "amx_tile" not in flags:
        assert not native
