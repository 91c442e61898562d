"""A user's checkout of TD-MPC2 (github.com/nicklashansen/tdmpc2), made runnable on this machine's CPU, for
the side-by-side benches (bench/fidelity.py, bench/parity.py, bench/vs_tdmpc2.py).

TD-MPC2's code is never part of this repository: fetch it yourself, at the commit the results name
(e9f5932), and its Python packages that this project's venv lacks into a folder of their own:

    git clone https://github.com/nicklashansen/tdmpc2 ~/tdmpc2 && git -C ~/tdmpc2 checkout e9f5932
    .venv/bin/python -m pip install --no-deps --target ~/tdmpc2-libs tensordict==0.7.2 torchrl==0.7.2 \
        orjson termcolor hydra-submitit-launcher submitit gymnasium==0.29.1 farama-notifications
    .venv/bin/python bench/tdmpc2_checkout.py ~/tdmpc2/tdmpc2        # the CPU patch below, idempotent

tensordict 0.7.2 works with torch 2.13 (0.15.3 does not build the agent); gymnasium 0.29.1 (TD-MPC2's; this
project's 1.2.2 refuses its dm_control wrapper, which is not a gymnasium.Env) shadows the venv's only for the
TD-MPC2 process, through PYTHONPATH. The patch changes only what stops it on a CPU: the hard-coded device
'cuda:0' (tdmpc2.py, common/scale.py, common/buffer.py), Adam `capturable=True` (refused on CPU), the
`assert torch.cuda.is_available()` of train.py, and the CUDA free-memory query of the buffer (storage on
the CPU). `python bench/tdmpc2_checkout.py PATH --check` lists what is and is not patched.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

TESTED_COMMIT = "e9f5932"
# (file, text in TD-MPC2's code, its CPU form)
CPU_PATCH = (
    ("tdmpc2.py", "torch.device('cuda:0')", "torch.device('cpu')"),
    ("tdmpc2.py", "device='cuda:0'", "device='cpu'"),
    ("tdmpc2.py", "capturable=True", "capturable=False"),
    ("common/scale.py", "torch.device('cuda:0')", "torch.device('cpu')"),
    ("common/buffer.py", "torch.device('cuda:0')", "torch.device('cpu')"),
    ("common/buffer.py", "mem_free, _ = torch.cuda.mem_get_info()", "mem_free = 0"),
    ("train.py", "assert torch.cuda.is_available()", "pass"),
)


class CheckoutError(SystemExit):
    pass


def package_dir(path: str | os.PathLike) -> Path:
    """TD-MPC2's `tdmpc2/` package folder (tdmpc2.py, common/) from the checkout or the folder itself."""
    p = Path(path).expanduser().resolve()
    for cand in (p, p / "tdmpc2"):
        if (cand / "tdmpc2.py").is_file() and (cand / "common").is_dir():
            return cand
    raise CheckoutError(
        f"{path} is not a TD-MPC2 checkout (no tdmpc2.py and common/ in it or in its tdmpc2/); "
        f"see bench/tdmpc2_checkout.py for how to fetch it"
    )


def patch_state(pkg: Path) -> list[tuple[str, str, bool]]:
    """(file, original text, patched?) for every line of the CPU patch."""
    out = []
    for name, old, new in CPU_PATCH:
        text = (pkg / name).read_text()
        out.append((name, old, old not in text and new in text))
    return out


def apply_cpu_patch(pkg: Path) -> list[str]:
    """Apply the CPU patch (idempotent); returns what changed."""
    changed = []
    for name, old, new in CPU_PATCH:
        f = pkg / name
        text = f.read_text()
        if old in text:
            f.write_text(text.replace(old, new))
            changed.append(f"{name}: {old} -> {new}")
        elif new not in text:
            raise CheckoutError(f"{f}: neither {old!r} nor its CPU form is there: not TD-MPC2 {TESTED_COMMIT}'s code")
    return changed


def require_patched(pkg: Path) -> None:
    missing = [f"{n}: {o}" for n, o, ok in patch_state(pkg) if not ok]
    if missing:
        raise CheckoutError(
            f"{pkg} is not patched for the CPU ({'; '.join(missing)}): run "
            f"`python bench/tdmpc2_checkout.py {pkg}` first"
        )


def import_tdmpc2(path: str | os.PathLike, extra_paths: list[str] = ()):
    """Put TD-MPC2's package (and `extra_paths`, e.g. its tensordict) first on sys.path and import it;
    returns the package folder. Its modules are top-level (`common`, `tdmpc2`, `envs`)."""
    pkg = package_dir(path)
    require_patched(pkg)
    for p in reversed([str(pkg), *extra_paths]):
        if p not in sys.path:
            sys.path.insert(0, p)
    import common as td_common

    if not os.path.dirname(td_common.__file__).startswith(str(pkg)):
        raise CheckoutError(
            f"`common` was imported from {td_common.__file__}, not from {pkg}: another package "
            f"named common is first on the path"
        )
    return pkg


def tdmpc2_config(pkg: Path, task: str, model_size: int, **overrides):
    """TD-MPC2's own config (its config.yaml and parse_cfg) for `task` at `model_size`, then `overrides`
    (set after parsing: dims a task set needs, num_q, ...). Compile, video and wandb off."""
    from unittest import mock

    import hydra.utils
    from common.parser import parse_cfg
    from omegaconf import OmegaConf

    base = OmegaConf.load(pkg / "config.yaml")
    base.pop("defaults", None)
    base.update(task=task, model_size=model_size, compile=False, save_video=False, enable_wandb=False, obs="state")
    with mock.patch.object(hydra.utils, "get_original_cwd", lambda: str(pkg)):
        cfg = parse_cfg(base)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    if cfg.get("bin_size") is None or "num_bins" in overrides:
        cfg.bin_size = (cfg.vmax - cfg.vmin) / (cfg.num_bins - 1)
    return cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("path", help="TD-MPC2's checkout or its tdmpc2/ package folder")
    p.add_argument("--check", action="store_true", help="only report what is patched")
    args = p.parse_args()
    pkg = package_dir(args.path)
    if args.check:
        for name, old, ok in patch_state(pkg):
            print(f"{'patched' if ok else 'NOT patched'}  {name}: {old}")
        return
    changed = apply_cpu_patch(pkg)
    print("\n".join(changed) if changed else f"{pkg}: already patched for the CPU")


if __name__ == "__main__":
    main()
