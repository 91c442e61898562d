"""Fidelity: this project's update against TD-MPC2's own, from the same weights, on the same batches.

TD-MPC2's agent is built from a user's CPU-patched checkout (bench/tdmpc2_checkout.py says how); ours is
built from its weights through the importer (agents/tdmpc2_import.py). Both then take N updates on the same
batches, drawing the same random numbers: the policy noise, the pair of Q heads of TD-MPC2's
`return_type='min'/'avg'` and the Q ensemble's dropout masks are recorded in TD-MPC2's update and replayed
in ours (agents/rng_tape.py; to record the masks head by head, TD-MPC2's vmapped ensemble is evaluated
head by head here, the same maths). Printed after update 1 and after N: the largest relative difference of
every loss and statistic, and per parameter group the largest absolute difference and the share of
elements beyond 1e-5 + 1e-4 |x| (task embeddings compared at TD-MPC2's max-norm 1, which it applies when a
row is looked up and we apply to every row after each step). Beside each, the same figure between ours and
a twin of ours fed every batch with its observations moved by one ulp: the rounding floor. A figure passes
within its fixed tolerance or within 10x that floor (TD-MPC2's entropy bonus divides by the log-prob + 1e-8,
so rows whose log-prob is near 0 amplify last-bit differences; the multitask batch has such rows).

Cases: `single` (model 1M, one task, obs 24 / action 6 like walker, 2 Q heads, dropout 0.01) and `multi`
(model 1M with 5 Q heads, mt30's 30 tasks with their obs / action dims, episode lengths and TD-MPC2's task
dim 96, action masks, batches mixing every task). Exit status 1 if any figure is past tolerance.

    python bench/fidelity.py --tdmpc2 ~/tdmpc2 --extra-path ~/tdmpc2-libs [--updates 100] [--cases single multi]
    python bench/fidelity.py ... --write-fixture tests/agents/data/tdmpc2_fidelity.pt   # the CI test's data

--write-fixture builds small models (every dim a few units: the file stays small), takes one update with
TD-MPC2's code and saves the weights before, the batch, the recorded randomness and TD-MPC2's losses and
weights after: data, no code. tests/agents/test_tdmpc2_fidelity.py replays it into ours.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time

MAIN = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, MAIN)

# tolerances: losses (relative), parameters (absolute max; share of elements beyond 1e-5 + 1e-4 |x|)
LOSS_RTOL = {"first": 1e-4, "last": 1e-2}
PARAM_ATOL = {"first": 1e-3, "last": 1e-2}  # Adam moves a weight by ~lr (3e-4) whatever its gradient: a sign flip of a
#                                                  near-zero gradient is a difference of up to 2 lr
PARAM_SHARE = {"first": 1e-3, "last": 0.05}
STATS = (
    "consistency_loss",
    "reward_loss",
    "value_loss",
    "total_loss",
    "grad_norm",
    "pi_loss",
    "pi_grad_norm",
    "pi_scale",
    "pi_entropy",
)

FIXTURE_DIMS = dict(enc_dim=16, mlp_dim=24, latent_dim=16, task_dim=8, num_enc_layers=2, num_bins=101)


TRACE: set = set()  # --trace K ...: the policy's difference printed after these updates
CFG_OVERRIDES: dict = {}  # --set key=value: TD-MPC2's config (ours takes its hyperparameters from it)
MT30_DIMS: tuple = ()  # (obs dims, action dims, episode lengths) of mt30's tasks, read before TD-MPC2 is imported


def mt30_dims() -> tuple:
    """From this project's task set (TD-MPC2's order); TD-MPC2's own `envs` package shadows ours once imported."""
    from envs import load_task_set

    ts = load_task_set("mt30")
    specs = list(ts.tasks)
    return [s.obs_dim for s in specs], [s.action_dim for s in specs], [s.episode_length for s in specs]


def _patch_ensemble_per_head(td_layers, tape) -> None:
    """TD-MPC2's Ensemble evaluated head by head (inside tape.ensemble_call()), not vmapped: the same values;
    its dropout masks are then drawn per head, where the tape can record them."""
    import torch

    def forward(self, *args, **kwargs):
        with tape.ensemble_call():
            return torch.stack([self._call(self.params[i], *args, **kwargs) for i in range(len(self))])

    td_layers.Ensemble.forward = forward


def build_case(pkg, case: str, *, fixture: bool = False, seed: int = 0):
    """(TD-MPC2 agent, its cfg, obs_dims, action_dims, episode_lengths) for a case."""
    import torch

    from bench.tdmpc2_checkout import tdmpc2_config

    if case == "single":
        obs_dims, action_dims, lengths = [24], [6], [500]
        task = "walker-walk"
    elif fixture:
        obs_dims, action_dims, lengths = [5, 9, 7], [1, 4, 2], [500, 100, 1000]
        task = "mt30"
    else:
        obs_dims, action_dims, lengths = MT30_DIMS
        task = "mt30"
    over = dict(obs_shape={"state": (max(obs_dims),)}, action_dim=max(action_dims), episode_length=max(lengths))
    if case == "multi":
        over.update(
            tasks=[f"task{i}" for i in range(len(obs_dims))] if fixture else None,
            action_dims=action_dims,
            episode_lengths=lengths,
            num_q=5,
        )
        if not fixture:
            over.pop("tasks")
    if fixture:
        over.update({k: v for k, v in FIXTURE_DIMS.items() if case == "multi" or k != "task_dim"})
        over["simnorm_dim"] = 8
        over["batch_size"] = 8
    over.update(CFG_OVERRIDES)
    cfg = tdmpc2_config(pkg, task, 1, **over)
    from tdmpc2 import TDMPC2

    torch.manual_seed(seed)
    agent = TDMPC2(cfg)
    return agent, cfg, obs_dims, action_dims, lengths


def make_batch(cfg, obs_dims, action_dims, seed: int, batch_size: int):
    """One batch in TD-MPC2's layout (obs [H+1, B, O], action [H, B, A], reward / terminated [H, B, 1], task
    [B] or None): every row's obs and action padded with zeros past its task's dims."""
    import torch

    g = torch.Generator().manual_seed(seed)
    H, B, O, A = cfg.horizon, batch_size, max(obs_dims), max(action_dims)
    T = len(obs_dims)
    task = torch.randint(T, (B,), generator=g)
    obs = torch.randn(H + 1, B, O, generator=g)
    action = torch.rand(H, B, A, generator=g) * 2 - 1
    obs_mask = (torch.arange(O).view(1, -1) < torch.tensor(obs_dims)[task].view(-1, 1)).float()
    act_mask = (torch.arange(A).view(1, -1) < torch.tensor(action_dims)[task].view(-1, 1)).float()
    obs, action = obs * obs_mask, action * act_mask
    reward = torch.rand(H, B, 1, generator=g) * 2
    terminated = torch.zeros(H, B, 1)
    return obs, action, reward, terminated, (task if T > 1 else None), act_mask


def our_agent_from(td_agent, cfg, lengths, multitask: bool):
    """Our Agent with the TD-MPC2 agent's weights (through the importer) and TD-MPC2's hyperparameters."""
    from agents.tdmpc2_import import TDMPC2_HYPERPARAMETERS, agent_from_tdmpc2_state

    return agent_from_tdmpc2_state(
        td_agent.model.state_dict(), {k: getattr(cfg, k) for k in TDMPC2_HYPERPARAMETERS}, lengths, multitask=multitask
    )


def td_update(td_agent, tape, batch) -> dict:
    obs, action, reward, terminated, task, _ = batch
    with tape.recording():
        info = td_agent._update(obs, action, reward, terminated, **({"task": task} if task is not None else {}))
    return {k: float(info[k]) for k in STATS}


def our_update(ours, tape, batch) -> dict:
    import torch

    from agents.batch import Batch

    obs, action, reward, terminated, task, act_mask = batch
    B = action.shape[1]
    b = Batch(
        obs=obs,
        action=action,
        reward=reward.squeeze(-1),
        terminated=terminated.squeeze(-1),
        task=task if task is not None else torch.zeros(B, dtype=torch.long),
        action_mask=act_mask,
    )
    with tape.replaying():
        stats = ours.update(b)
    return {k: stats[k] for k in STATS}


def reference_model(td_agent, ours, multitask: bool):
    """TD-MPC2's current weights in our WorldModel's layout (a fresh copy of ours, loaded through the importer)."""
    import copy

    from agents.tdmpc2_import import load_into_world_model, parse_tdmpc2_state

    ref = copy.deepcopy(ours.model)
    load_into_world_model(ref, parse_tdmpc2_state(td_agent.model.state_dict(), multitask=multitask))
    return ref


GROUPS = ("encoder", "dynamics", "reward_head", "qs", "target_qs", "policy", "task_emb")


def compare_params(ours_model, ref_model) -> dict[str, tuple[float, float]]:
    """Per group: (largest |ours - TD-MPC2|, share of elements beyond 1e-5 + 1e-4 |TD-MPC2|)."""

    out = {}
    ref = dict(ref_model.named_parameters())
    for group in GROUPS:
        worst, beyond, total = 0.0, 0, 0
        for name, p in ours_model.named_parameters():
            if name.split(".")[0] != group:
                continue
            a, b = p.detach(), ref[name].detach()
            if group == "task_emb":  # at TD-MPC2's max-norm 1, applied on lookup there, after each step here
                a = a / a.norm(dim=-1, keepdim=True).clamp(min=1.0)
                b = b / b.norm(dim=-1, keepdim=True).clamp(min=1.0)
            d = (a - b).abs()
            worst = max(worst, float(d.max()))
            beyond += int((d > 1e-5 + 1e-4 * b.abs()).sum())
            total += d.numel()
        if total:
            out[group] = (worst, beyond / total)
    return out


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-8)


def report(case: str, when: str, k: int, ours: dict, theirs: dict, params: dict, twin: dict, twin_params: dict) -> bool:
    """A figure passes at its fixed tolerance or at 10x what a 1-ulp change of the batch's observations moves
    it in ours (the twin): rounding differs between any two codes, and where the maths is ill-conditioned
    (TD-MPC2's entropy ratio near a zero log-prob) that floor is what equality can mean."""
    ok = True
    print(f"\n[{case}] after {k} update(s)")
    print(f"  {'statistic':<18}{'ours':>14}{'TD-MPC2':>14}{'rel. diff':>12}{'1-ulp twin':>12}")
    for s in STATS:
        r, floor = rel(ours[s], theirs[s]), rel(ours[s], twin[s])
        bad = r > max(LOSS_RTOL[when], 10 * floor)
        ok &= not bad
        print(f"  {s:<18}{ours[s]:>14.7g}{theirs[s]:>14.7g}{r:>12.2e}{floor:>12.2e}{'  PAST TOLERANCE' if bad else ''}")
    print(f"  {'parameters':<18}{'max |diff|':>14}{'share beyond':>14}{'1-ulp twin':>12}{'share':>10}")
    for g, (worst, share) in params.items():
        tw, tshare = twin_params[g]
        bad = worst > max(PARAM_ATOL[when], 10 * tw) or share > max(PARAM_SHARE[when], 10 * tshare)
        ok &= not bad
        print(f"  {g:<18}{worst:>14.2e}{share:>14.2e}{tw:>12.2e}{tshare:>10.2e}{'  PAST TOLERANCE' if bad else ''}")
    return ok


def nudged(batch):
    """The batch with every observation moved by one ulp (away from zero: padded zeros stay zero)."""
    import torch

    obs = batch[0]
    return (torch.where(obs == 0, obs, torch.nextafter(obs, obs * 2)),) + tuple(batch[1:])


def run_case(pkg, case: str, updates: int, batch_size: int) -> bool:
    import common.layers as td_layers
    import torch

    from agents.rng_tape import RandomTape

    agent, cfg, obs_dims, action_dims, lengths = build_case(pkg, case)
    multitask = case == "multi"
    ours = our_agent_from(agent, cfg, lengths, multitask)
    twin = our_agent_from(agent, cfg, lengths, multitask)  # fed every batch with its obs moved by one ulp
    ok = True
    t0 = time.time()
    for k in range(1, updates + 1):
        tape = RandomTape()
        _patch_ensemble_per_head(td_layers, tape)
        batch = make_batch(cfg, obs_dims, action_dims, seed=1000 + k, batch_size=batch_size)
        torch.manual_seed(k)  # what TD-MPC2 draws (and the tape replays into ours): the same on every run
        theirs = td_update(agent, tape, batch)
        mine = our_update(ours, tape, batch)
        if k in TRACE:
            ref = reference_model(agent, ours, multitask)
            print(
                f"  update {k}: policy max |diff| {compare_params(ours.model, ref)['policy'][0]:.2e}, "
                f"vs twin {compare_params(ours.model, twin.model)['policy'][0]:.2e}"
            )
        twin_stats = our_update(twin, tape, nudged(batch))
        if k == 1 or k == updates:
            params = compare_params(ours.model, reference_model(agent, ours, multitask))
            ok &= report(
                case,
                "first" if k == 1 else "last",
                k,
                mine,
                theirs,
                params,
                twin_stats,
                compare_params(ours.model, twin.model),
            )
        if not all(math.isfinite(v) for v in mine.values()):
            print(f"  non-finite statistics at update {k}: {mine}")
            return False
    print(f"  ({updates} updates of each agent in {time.time() - t0:.0f} s; batch {batch_size})")
    return ok


def write_fixture(pkg, path: str) -> None:
    """Small single-task and multitask cases, one update each with TD-MPC2's code: data only."""
    import common.layers as td_layers
    import torch

    from agents.rng_tape import RandomTape
    from agents.tdmpc2_import import TDMPC2_HYPERPARAMETERS

    out = {"tdmpc2_commit": _commit(pkg), "cases": {}}
    for case in ("single", "multi"):
        agent, cfg, obs_dims, action_dims, lengths = build_case(pkg, case, fixture=True, seed=3)
        before = {k: v.detach().clone() for k, v in agent.model.state_dict().items() if isinstance(v, torch.Tensor)}
        tape = RandomTape()
        _patch_ensemble_per_head(td_layers, tape)
        batch = make_batch(cfg, obs_dims, action_dims, seed=7, batch_size=cfg.batch_size)
        theirs = td_update(agent, tape, batch)
        after = {k: v.detach().clone() for k, v in agent.model.state_dict().items() if isinstance(v, torch.Tensor)}
        obs, action, reward, terminated, task, act_mask = batch
        hyper = {k: getattr(cfg, k) for k in TDMPC2_HYPERPARAMETERS}
        out["cases"][case] = {
            "before": before,
            "after": after,
            "hyper": hyper,
            "episode_lengths": lengths,
            "batch": {
                "obs": obs,
                "action": action,
                "reward": reward,
                "terminated": terminated,
                "task": task,
                "action_mask": act_mask,
            },
            "tape": tape.state_dict(),
            "stats": theirs,
        }
    torch.save(out, path)
    print(
        f"wrote {path} ({os.path.getsize(path) / 1e3:.0f} kB): TD-MPC2 {out['tdmpc2_commit']}, "
        f"cases {list(out['cases'])}"
    )


def _commit(pkg) -> str:
    r = subprocess.run(["git", "-C", str(pkg), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown (not a git checkout)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tdmpc2", required=True, help="TD-MPC2's checkout (or its tdmpc2/ folder), CPU-patched")
    p.add_argument("--extra-path", action="append", default=[], help="more import paths (TD-MPC2's tensordict, ...)")
    p.add_argument("--updates", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--cases", nargs="+", default=["single", "multi"], choices=["single", "multi"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--write-fixture", metavar="PATH")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a TD-MPC2 config value for both agents (e.g. entropy_coef=0, dropout=0)",
    )
    p.add_argument(
        "--trace",
        nargs="*",
        type=int,
        default=[],
        help="updates after which to print the policy's difference (where it grows)",
    )
    args = p.parse_args()
    TRACE.update(args.trace)
    import ast

    for item in args.set:
        k, _, v = item.partition("=")
        CFG_OVERRIDES[k] = ast.literal_eval(v)
    os.environ.setdefault("MUJOCO_GL", "egl")
    from bench.tdmpc2_checkout import import_tdmpc2

    global MT30_DIMS
    if "multi" in args.cases and not args.write_fixture:
        MT30_DIMS = mt30_dims()
    pkg = import_tdmpc2(args.tdmpc2, args.extra_path)
    import torch

    torch.set_num_threads(args.threads)
    head = subprocess.run(["git", "-C", MAIN, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(
        f"ours: {head.stdout.strip()} (default config); TD-MPC2: {pkg} @ {_commit(pkg)}; torch {torch.__version__}, "
        f"CPU kernels {torch.backends.cpu.get_cpu_capability()}"
    )
    if args.write_fixture:
        write_fixture(pkg, args.write_fixture)
        return
    ok = True
    for case in args.cases:
        ok &= run_case(pkg, case, args.updates, args.batch_size)
    print("\nwithin tolerance" if ok else "\nPAST TOLERANCE (see the marked lines)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
