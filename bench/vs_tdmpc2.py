"""Side-by-side CPU timing: this project's agent vs TD-MPC2's own code, in ONE process.

TD-MPC2's code is not part of this repository: bring your own copy of its `tdmpc2/` package folder
(tdmpc2.py, common/) patched only to run on CPU (device 'cuda:0' -> 'cpu' in tdmpc2.py and
common/scale.py; Adam `capturable=False`), and a tensordict that works with your torch (0.7.2 did with
torch 2.13; 0.15.3 did not), e.g. `pip install --no-deps --target DIR tensordict==0.7.2 orjson`.
bench/results/vs_tdmpc2.md has the files, commits and figures of the run on the development machine.

Figures: one planned action (B=1, warm start) and one gradient update (batch 256, horizon 3),
at model sizes 1M and 5M. Both agents of a figure are built at the same size, each is warmed up
(--warmup calls), then calls are interleaved ours, theirs, ours, theirs, ... and each pair gives a
ratio ours/theirs. Printed per figure: median ms of each, median of the per-pair ratios (min-max).

    python bench/vs_tdmpc2.py --tdmpc2 PATH/tdmpc2 [--extra-path DIR] --threads 2 [--keep-freed-memory]

--keep-freed-memory calls agents.host.keep_freed_memory() first thing (process-wide glibc mallopt:
both agents get it); without it neither does.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

MAIN = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this repository


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return f.read().strip()


def proc_stat() -> tuple[int, int, int]:
    """(busy ticks of all CPUs, of which nice ticks, steal ticks) from /proc/stat's cpu line."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    return user + nice + system + irq + softirq, nice, steal


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tdmpc2", required=True, help="TD-MPC2's tdmpc2/ package folder (tdmpc2.py, common/), CPU-patched")
    p.add_argument("--extra-path", action="append", default=[], help="more import paths (e.g. tensordict's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep-freed-memory", action="store_true")
    p.add_argument("--sizes", nargs="+", default=["1", "5"])
    p.add_argument("--figures", nargs="+", default=["plan", "update"], choices=["plan", "update"])
    p.add_argument("--plan-pairs", type=int, default=15)
    p.add_argument("--update-pairs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--flops", action="store_true", help="also count FLOPs per call of each (FlopCounterMode)")
    args = p.parse_args()

    t_start = time.time()
    print(f"load at start: {loadavg()}", flush=True)

    # --- process-wide allocator setting, before any tensor exists -----------------------------
    sys.path.insert(0, MAIN)
    kept = False
    if args.keep_freed_memory:
        from agents.host import keep_freed_memory

        kept = keep_freed_memory()

    import torch

    torch.set_num_threads(args.threads)

    # TD-MPC2's own modules: `from common import ...` needs its package dir first on the path
    for path in args.extra_path:
        sys.path.insert(0, path)
    td_dir = os.path.abspath(args.tdmpc2)
    sys.path.insert(0, td_dir)
    import common as td_common
    import tensordict
    from tdmpc2 import TDMPC2  # TD-MPC2's tdmpc2.py

    if not os.path.dirname(td_common.__file__).startswith(td_dir):
        raise SystemExit(
            f"`common` was imported from {td_common.__file__}, not from {td_dir}: another package "
            "named common is first on the path"
        )

    from agents.agent import Agent
    from agents.batch import Batch
    from agents.config import make_agent_config

    # --- what exactly is measured ---------------------------------------------------------------
    head = subprocess.run(
        ["git", "-C", MAIN, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", MAIN, "status", "--short", "agents"], capture_output=True, text=True
    ).stdout.split()
    h = hashlib.sha1()
    for fn in sorted(os.listdir(os.path.join(MAIN, "agents"))):
        if fn.endswith(".py"):
            h.update(open(os.path.join(MAIN, "agents", fn), "rb").read())
    print(
        f"ours: HEAD {head}, agents/*.py sha1 {h.hexdigest()[:12]}, uncommitted in agents/: {' '.join(dirty) or 'none'}"
    )
    print(f"TD-MPC2: {td_dir} (tensordict {tensordict.__version__})")

    def matmul_gflops() -> float:
        """GFLOP/s of a plain [1024, 1024] x [1024, 1024] fp32 matmul (median of 20)."""
        a = torch.randn(1024, 1024)
        b = torch.randn(1024, 1024)
        for _ in range(3):
            a @ b
        ts = []
        for _ in range(20):
            t = time.perf_counter()
            a @ b
            ts.append(time.perf_counter() - t)
        return 2 * 1024**3 / statistics.median(ts) / 1e9

    gflops = matmul_gflops()
    print(
        f"machine: torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"torch threads {torch.get_num_threads()}, allocator keeps freed memory {kept}, "
        f"plain fp32 1024^3 matmul {gflops:.1f} GFLOP/s, nproc {os.cpu_count()}",
        flush=True,
    )

    H, B, OBS, ACT = 3, 256, 24, 6

    def tdmpc2_cfg(size: str):
        # config.yaml defaults (upstream, compile-era) + MODEL_SIZE preset + parse_cfg's derived values,
        # as a plain dataclass like upstream's cfg_to_dataclass (attribute access, no OmegaConf)
        preset = {
            "1": dict(enc_dim=256, mlp_dim=384, latent_dim=128, num_enc_layers=2, num_q=2),
            "5": dict(enc_dim=256, mlp_dim=512, latent_dim=512, num_enc_layers=2),
        }[size]
        d: dict[str, Any] = dict(
            task="walker-run",
            obs="state",
            steps=10_000_000,
            batch_size=B,
            reward_coef=0.1,
            value_coef=0.1,
            consistency_coef=20,
            rho=0.5,
            lr=3e-4,
            enc_lr_scale=0.3,
            grad_clip_norm=20,
            tau=0.01,
            discount_denom=5,
            discount_min=0.95,
            discount_max=0.995,
            buffer_size=1_000_000,
            mpc=True,
            iterations=6,
            num_samples=512,
            num_elites=64,
            num_pi_trajs=24,
            horizon=H,
            min_std=0.05,
            max_std=2,
            temperature=0.5,
            log_std_min=-10,
            log_std_max=2,
            entropy_coef=1e-4,
            num_bins=101,
            vmin=-10,
            vmax=+10,
            model_size=int(size),
            num_enc_layers=2,
            enc_dim=256,
            num_channels=32,
            mlp_dim=512,
            latent_dim=512,
            task_dim=96,
            num_q=5,
            dropout=0.01,
            simnorm_dim=8,
            compile=False,
            seed=1,
            # parse_cfg / make_env
            multitask=False,
            task_title="Walker Run",
            tasks=["walker-run"],
            obs_shape={"state": (OBS,)},
            action_dim=ACT,
            episode_length=1000,
            obs_shapes=None,
            action_dims=None,
            episode_lengths=None,
            seed_steps=None,
        )
        d.update(preset)
        d["task_dim"] = 0  # parse_cfg: single task
        d["bin_size"] = (d["vmax"] - d["vmin"]) / (d["num_bins"] - 1)
        fields = [(k, Any, dataclasses.field(default_factory=lambda v=v: v)) for k, v in d.items()]
        cls = dataclasses.make_dataclass("Config", fields)
        cls.get = lambda self, k, default=None: getattr(self, k, default)
        return cls()

    def ours_agent(size: str) -> Agent:
        cfg = make_agent_config(
            obs_dim=OBS, action_dim=ACT, episode_lengths=[1000], model_size=size, planner=dict(horizon=H)
        )
        return Agent(cfg)

    def faults() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    tick = os.sysconf("SC_CLK_TCK")
    ncpu = os.cpu_count()

    def interleave(fa, fb, pairs: int):
        """-> per side: wall seconds, minor faults, share of the machine used by OTHER processes during
        the call (busy ticks of all CPUs minus ours, over wall x CPUs), of which nice (the nice-19 job)."""
        out = {k: ([], []) for k in ("t", "f", "others", "nice", "steal")}
        for _ in range(pairs):
            for side, fn in ((0, fa), (1, fb)):
                f0, c0, (b0, n0, s0) = faults(), own_cpu(), proc_stat()
                t = time.perf_counter()
                fn()
                dt = time.perf_counter() - t
                f1, c1, (b1, n1, s1) = faults(), own_cpu(), proc_stat()
                cap = dt * ncpu
                out["t"][side].append(dt)
                out["f"][side].append(f1 - f0)
                out["others"][side].append(max(0.0, (b1 - b0) / tick - (c1 - c0)) / cap)
                out["nice"][side].append((n1 - n0) / tick / cap)
                out["steal"][side].append((s1 - s0) / tick / cap)
        return out

    def count_flops(fn) -> float:
        # FlopCounterMode's formulas, without its module tracker (which calls bool() on modules and
        # so fails on tensordict's TensorDictParams)
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils.flop_counter import flop_registry

        class Count(TorchDispatchMode):
            total = 0

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                f = flop_registry.get(func._overloadpacket)
                if f is not None:
                    Count.total += f(*args, **kwargs, out_val=out)
                return out

        with Count():
            fn()
        return Count.total / 1e9

    rows = []

    def measure(name: str, ours_fn, theirs_fn, pairs: int) -> None:
        """Warm each up, interleave `pairs` pairs, count FLOPs if asked, print the figure."""
        for fn in (ours_fn, theirs_fn):
            for _ in range(args.warmup):
                fn()
        fl = (count_flops(ours_fn), count_flops(theirs_fn)) if args.flops else None
        rows.append((name, interleave(ours_fn, theirs_fn, pairs), fl))
        report(rows[-1])

    for size in args.sizes:
        torch.manual_seed(0)
        ours = ours_agent(size)
        theirs = TDMPC2(tdmpc2_cfg(size))
        n_ours = ours.model.num_parameters()
        n_theirs = theirs.model.total_params
        pc = ours.cfg.planner
        tc = theirs.cfg
        print(
            f"\nsize {size}M: params ours {n_ours / 1e6:.3f}M (num_q {ours.cfg.model.num_q}), "
            f"TD-MPC2 {n_theirs / 1e6:.3f}M (num_q {tc.num_q}); discount ours {ours.cfg.discounts[0]:.4f} "
            f"TD-MPC2 {theirs.discount:.4f}"
        )
        print(
            f"  planner ours: H {pc.horizon} it {pc.iterations} N {pc.num_samples} E {pc.num_elites} "
            f"P {pc.num_pi_trajs} std [{pc.min_std}, {pc.max_std}] temp {pc.temperature} compile {pc.compile} | "
            f"TD-MPC2: H {tc.horizon} it {tc.iterations} N {tc.num_samples} E {tc.num_elites} "
            f"P {tc.num_pi_trajs} std [{tc.min_std}, {tc.max_std}] temp {tc.temperature} compile {tc.compile}",
            flush=True,
        )

        if "plan" in args.figures:
            obs = torch.randn(1, OBS)
            task = torch.zeros(1, dtype=torch.long)
            state = ours.new_planner_state(1)
            ours_plan = lambda: ours.act(obs, task=task, state=state)  # noqa: E731
            theirs.act(obs[0], t0=True, eval_mode=False)  # episode start, then warm-started calls
            theirs_plan = lambda: theirs.act(obs[0], t0=False, eval_mode=False)  # noqa: E731
            measure(f"plan {size}M", ours_plan, theirs_plan, args.plan_pairs)

        if "update" in args.figures:
            g = torch.Generator().manual_seed(1)
            obs_b = torch.randn(H + 1, B, OBS, generator=g)
            act_b = torch.rand(H, B, ACT, generator=g) * 2 - 1
            rew_b = torch.randn(H, B, generator=g)
            batch = Batch(
                obs=obs_b,
                action=act_b,
                reward=rew_b,
                terminated=torch.zeros(H, B),
                task=torch.zeros(B, dtype=torch.long),
                action_mask=torch.ones(B, ACT),
            )

            class StubBuffer:  # what upstream Buffer.sample() returns (single task): task None
                def sample(self):
                    return obs_b, act_b, rew_b.unsqueeze(-1), None

            buf = StubBuffer()
            ours_upd = lambda: ours.update(batch)  # noqa: E731
            theirs_upd = lambda: theirs.update(buf)  # noqa: E731
            measure(f"update {size}M", ours_upd, theirs_upd, args.update_pairs)
        ours = theirs = None  # freed before the next size

    gflops_end = matmul_gflops()
    print(f"\nplain fp32 1024^3 matmul at end: {gflops_end:.1f} GFLOP/s (start {gflops:.1f})")
    print(
        f"summary (threads {args.threads}, allocator {'keep-freed-memory' if kept else 'glibc default'}); "
        f"'others': median share of the machine used by other processes during the calls; 'quiet': pairs "
        f"where both calls had others < {QUIET:.0%}"
    )
    print(
        f"{'figure':<11} {'ours ms':>8} {'TD-MPC2 ms':>10} {'ours/TD-MPC2 median (min-max)':>31} {'pairs':>5} "
        f"{'quiet pairs: median (min-max)':>33} {'others ours/TD':>14} {'faults/call ours':>16} {'TD-MPC2':>8}"
    )
    for name, d, _ in rows:
        ta, tb = d["t"]
        r = [x / y for x, y in zip(ta, tb, strict=False)]
        q = [x for x, oa, ob in zip(r, *d["others"], strict=False) if oa < QUIET and ob < QUIET]
        qs = f"{len(q):>3}: {statistics.median(q):.3f} ({min(q):.3f}-{max(q):.3f})" if q else "  0"
        print(
            f"{name:<11} {statistics.median(ta) * 1e3:8.1f} {statistics.median(tb) * 1e3:10.1f} "
            f"{statistics.median(r):>14.3f} ({min(r):.3f}-{max(r):.3f}) {len(r):>5} {qs:>33} "
            f"{statistics.median(d['others'][0]):6.0%}/{statistics.median(d['others'][1]):<6.0%} "
            f"{statistics.median(d['f'][0]):16.0f} {statistics.median(d['f'][1]):8.0f}"
        )
    print(f"\nload at end: {loadavg()}; wall {time.time() - t_start:.0f} s", flush=True)


QUIET = 0.05


def report(row) -> None:
    name, d, fl = row
    ta, tb = d["t"]
    r = [x / y for x, y in zip(ta, tb, strict=False)]
    line = (
        f"  {name}: ours {statistics.median(ta) * 1e3:.1f} ms, TD-MPC2 {statistics.median(tb) * 1e3:.1f} ms, "
        f"ours/TD-MPC2 median {statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f}), {len(r)} pairs; "
        f"minor faults/call ours {statistics.median(d['f'][0]):.0f}, TD-MPC2 {statistics.median(d['f'][1]):.0f}"
    )
    if fl is not None:
        line += f"; GFLOP/call ours {fl[0]:.3f}, TD-MPC2 {fl[1]:.3f}"
    print(line, flush=True)
    print("    per pair: ours ms / TD-MPC2 ms / ratio / others% ours,TD (of which nice% ours,TD) steal% ours,TD")
    for i, (x, y) in enumerate(zip(ta, tb, strict=False)):
        print(
            f"    {i:2d} {x * 1e3:8.1f} {y * 1e3:8.1f} {x / y:6.3f}  {d['others'][0][i]:4.0%},{d['others'][1][i]:4.0%}"
            f"  ({d['nice'][0][i]:4.0%},{d['nice'][1][i]:4.0%})  {d['steal'][0][i]:4.0%},{d['steal'][1][i]:4.0%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
