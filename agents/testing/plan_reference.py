"""Writes tests/agents/data/plan_reference.pt: plans of a small fixed model, for the constraints-off
regression test (tests/agents/test_constraints.py), and compares today's plans with it.

Run from the repository root at the commit whose plans are the reference:
    python -m agents.testing.plan_reference
The file holds the model weights too, so the test does not depend on torch's init stream.

    python -m agents.testing.plan_reference --check
recomputes the plans with today's code and exits 1 unless every tensor matches the reference within
TOLERANCE. The reference was written on one CPU with AVX2 kernels; other kernels round differently.
Measured spread against it (2-core EPYC, ATEN_CPU_CAPABILITY=default/avx2/avx512): actions, means, stds
and elite actions up to 1.3e-4, values up to 1.0e-2 on values of 29-85 (2e-4 relative); an Intel Xeon
with AMX was reported at 3e-7 / 8e-3. A changed planner (another draw, an elite set that differs, a
changed refit) moves actions by 1e-2 and more: the tolerance sits ~10x above rounding and well below that."""

import sys
from pathlib import Path

import torch

from agents.config import make_agent_config
from agents.planner import PlannerState, plan_batch
from agents.world_model import WorldModel

# rows_per_pass=2: the CPU default of the reference commit (results agree across splits only to rounding)
PLANNER = dict(horizon=3, iterations=3, num_samples=48, num_elites=6, num_pi_trajs=6, rows_per_pass=2)
MODEL = dict(enc_dim=32, mlp_dim=32, latent_dim=16, num_q=2, task_dim=8)
MASKS = [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]]
TASKS = [0, 1, 0]  # rows
REFERENCE = Path(__file__).resolve().parents[2] / "tests" / "agents" / "data" / "plan_reference.pt"


def build():
    cfg = make_agent_config(
        obs_dim=5, action_dim=4, episode_lengths=[500, 500], model_size="tiny", model=MODEL, planner=PLANNER
    )
    return cfg, WorldModel(cfg.model, torch.tensor(MASKS)).eval()


def plans(model, cfg, obs):
    """Four plan calls of 3 rows (row 1 reset before the third): actions and infos of each."""
    state = PlannerState.create(len(TASKS), cfg.planner.horizon, 4, seed=7)
    task = torch.tensor(TASKS)
    out = []
    for k in range(4):
        if k == 2:
            state.reset([1])
        action, info = plan_batch(
            model, obs[k], task, state, cfg.planner, torch.tensor([0.99, 0.95]), eval_mode=(k == 3)
        )
        out.append(
            {
                "action": action,
                "mean": info.mean,
                "std": info.std,
                "elite_actions": info.elite_actions,
                "elite_value": info.elite_value,
                "chosen_value": info.chosen_value,
            }
        )
    return out


# (atol, rtol) per planner output: float rounding differs between CPUs and kernels (see the docstring)
TOLERANCE = {
    "action": (1e-3, 0.0),
    "mean": (1e-3, 0.0),
    "std": (1e-3, 0.0),
    "elite_actions": (1e-3, 0.0),
    "elite_value": (1e-2, 1e-3),
    "chosen_value": (1e-2, 1e-3),
}


def differences(model, cfg, ref: dict) -> list[str]:
    """Today's plans of `model` (holding ref["model"]) against the reference: one line per tensor outside
    TOLERANCE (shapes and dtypes must match exactly)."""
    out = []
    for k, (got, want) in enumerate(zip(plans(model, cfg, ref["obs"]), ref["plans"], strict=False)):
        for name, w in want.items():
            g, (atol, rtol) = got[name], TOLERANCE[name]
            if g.shape != w.shape or g.dtype != w.dtype:
                out.append(f"call {k}: {name} is {tuple(g.shape)} {g.dtype}, the reference {tuple(w.shape)} {w.dtype}")
            elif not torch.allclose(g, w, atol=atol, rtol=rtol):
                out.append(
                    f"call {k}: {name} differs from the reference plan by up to {(g - w).abs().max():.3g} "
                    f"(tolerance {atol:g} + {rtol:g} x |reference|)"
                )
    return out


def load_reference(path: Path = REFERENCE) -> tuple:
    """(cfg, model with the reference weights, reference dict)."""
    ref = torch.load(path, weights_only=True)
    cfg, model = build()
    model.load_state_dict(ref["model"])
    return cfg, model, ref


def check() -> int:
    """Today's plans against the reference: 0 if every tensor is within tolerance, else 1 (differences printed)."""
    cfg, model, ref = load_reference()
    differ = differences(model, cfg, ref)
    print("\n".join(differ) or f"every plan matches the reference ({torch.backends.cpu.get_cpu_capability()} kernels)")
    return 1 if differ else 0


if __name__ == "__main__" and sys.argv[1:] == ["--check"]:
    sys.exit(check())
elif __name__ == "__main__":
    torch.manual_seed(0)
    cfg, model = build()
    with torch.no_grad():
        for p in list(model.reward_head[-1].parameters()) + list(model.qs.out.parameters()):
            p.normal_(0, 0.5)
    obs = torch.randn(4, len(TASKS), 5)
    torch.save(
        {"model": model.state_dict(), "obs": obs, "plans": plans(model, cfg, obs), "torch": str(torch.__version__)},
        REFERENCE,
    )
