"""Writes plan_reference.pt: plans of a small fixed model, for the constraints-off bitwise test.

Run from the repository root at the commit whose plans are the reference:
    python tests/agents/data/make_plan_reference.py
The file holds the model weights too, so the test does not depend on torch's init stream.

    python tests/agents/data/make_plan_reference.py --check
recomputes the plans with today's code and exits 1 unless every tensor equals the reference bit for
bit. The reference was written with AVX2 kernels: AVX-512 ones round differently (on an AVX-512 EPYC up
to 6e-5 in actions and 7e-3 in predicted values), so the check runs with aten, MKL and oneDNN held to
AVX2 (ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2: the test sets them)."""
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


def build():
    cfg = make_agent_config(obs_dim=5, action_dim=4, episode_lengths=[500, 500], model_size="tiny", model=MODEL,
                            planner=PLANNER)
    return cfg, WorldModel(cfg.model, torch.tensor(MASKS)).eval()


def plans(model, cfg, obs):
    """Four plan calls of 3 rows (row 1 reset before the third): actions and infos of each."""
    state = PlannerState.create(len(TASKS), cfg.planner.horizon, 4, seed=7)
    task = torch.tensor(TASKS)
    out = []
    for k in range(4):
        if k == 2:
            state.reset([1])
        action, info = plan_batch(model, obs[k], task, state, cfg.planner, torch.tensor([0.99, 0.95]),
                                  eval_mode=(k == 3))
        out.append({"action": action, "mean": info.mean, "std": info.std, "elite_actions": info.elite_actions,
                    "elite_value": info.elite_value, "chosen_value": info.chosen_value})
    return out


REFERENCE_CAPABILITY = "AVX2"  # torch.backends.cpu.get_cpu_capability() of the reference's run


def check() -> int:
    """Today's plans against the reference: 0 if every tensor is bitwise equal, else 1 (differences printed)."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != REFERENCE_CAPABILITY:
        print(f"aten runs {capability} kernels, the reference {REFERENCE_CAPABILITY}: "
              f"set ATEN_CPU_CAPABILITY={REFERENCE_CAPABILITY.lower()}")
        return 2
    ref = torch.load(Path(__file__).with_name("plan_reference.pt"), weights_only=True)
    cfg, model = build()
    model.load_state_dict(ref["model"])
    differ = [f"call {k}: {name} differs from the reference plan by up to {(got[name] - want[name]).abs().max():.3g}"
              for k, (got, want) in enumerate(zip(plans(model, cfg, ref["obs"]), ref["plans"])) for name in want
              if not torch.equal(got[name], want[name])]
    print("\n".join(differ) or "every plan equals the reference bit for bit")
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
    torch.save({"model": model.state_dict(), "obs": obs, "plans": plans(model, cfg, obs),
                "torch": str(torch.__version__)}, Path(__file__).with_name("plan_reference.pt"))
