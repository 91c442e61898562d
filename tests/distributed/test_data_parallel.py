"""Two data-parallel learner ranks take the step a single process takes on the union of their
batches: gradients averaged, the Q scale computed over the gathered values."""

import os
import sys
import tempfile

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from agents.agent import Agent
from agents.batch import Batch
from agents.config import make_agent_config

B, H, O, A, T = 32, 3, 6, 2, 2


def _cfg():
    # dropout off, two Q heads (the TD target's random pair is then both) and a near-zero policy
    # std, so the only randomness left in an update is below float tolerance
    return make_agent_config(
        obs_dim=O,
        action_dim=A,
        episode_lengths=[100] * T,
        model_size="tiny",
        model=dict(dropout=0.0, num_q=2, log_std_min=-12.0, log_std_max=-12.0),
        planner=dict(horizon=H),
    )


def _batch():
    rng = np.random.default_rng(0)
    return {
        "obs": rng.standard_normal((H + 1, B, O)).astype(np.float32),
        "action": rng.uniform(-1, 1, (H, B, A)).astype(np.float32),
        "reward": rng.standard_normal((H, B)).astype(np.float32),
        "terminated": np.zeros((H, B), np.float32),
        "task": rng.integers(0, T, B).astype(np.int64),
        "action_mask": np.ones((B, A), np.float32),
    }


def _half(arrays: dict, rank: int) -> dict:
    sl = slice(rank * B // 2, (rank + 1) * B // 2)
    return {k: (v[sl] if k in ("task", "action_mask") else v[:, sl]) for k, v in arrays.items()}


def _recording(sync, grads: list):
    """A grad_sync that keeps the gradients it leaves behind (after averaging, if `sync`)."""

    def record(params):
        if sync is not None:
            sync(params)
        grads.append(torch.cat([p.grad.flatten() for p in params]).clone())

    return record


def _rank(rank: int, init_file: str, out: str) -> None:
    from distributed.learner import _gather_sync, _grad_sync

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.manual_seed(0)  # the same initial parameters on both ranks, as the broadcast from rank 0 gives
    grads: list = []
    agent = Agent(_cfg(), grad_sync=_recording(_grad_sync(2), grads), gather_sync=_gather_sync(2))
    torch.manual_seed(100 + rank)
    agent.update(Batch.from_numpy(_half(_batch(), rank), "cpu"))
    if rank == 0:
        torch.save(
            {
                "grads": grads,
                "scale": agent.scale.value,
                "params": {k: v.clone() for k, v in agent.model.state_dict().items()},
            },
            out,
        )
    # Both ranks are done once they meet here (rank 0 has saved); then each leaves at once, with no teardown
    # of the group, the interpreter or the C++ runtime: in that teardown a gloo thread still joinable took
    # rank 1 down with SIGABRT ("terminate called without an active exception") once in CI, after its work
    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _single(arrays: dict):
    torch.manual_seed(0)
    grads: list = []
    agent = Agent(_cfg(), grad_sync=_recording(None, grads))
    agent.update(Batch.from_numpy(arrays, "cpu"))
    return agent, grads


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_two_ranks_take_the_single_process_step_on_the_union_of_their_batches():
    with tempfile.TemporaryDirectory() as d:
        init_file, out = os.path.join(d, "init"), os.path.join(d, "rank0.pt")
        mp.start_processes(_rank, args=(init_file, out), nprocs=2, start_method="spawn")
        ranks = torch.load(out, weights_only=True)
    single, grads = _single(_batch())
    assert len(grads) == len(ranks["grads"]) == 2  # the world model's step, then the policy's
    for dp, one in zip(ranks["grads"], grads, strict=False):  # averaged gradients == the union batch's gradient
        assert _rel(dp, one) < 1e-4, f"relative gradient difference {_rel(dp, one):.2e}"
    assert torch.allclose(ranks["scale"], single.scale.value, rtol=1e-5)  # the scale of the global batch
    state = single.model.state_dict()
    lr = single.cfg.optim.lr
    assert max(float((ranks["params"][k] - v).abs().max()) for k, v in state.items() if v.is_floating_point()) < lr
    # and the check can fail: one rank's half batch alone gives another gradient
    _, half = _single(_half(_batch(), 0))
    assert _rel(half[0], grads[0]) > 1e-2
