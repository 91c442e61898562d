"""The layout of TD-MPC2's published multitask dataset chunks (mt30 / mt80).

Each chunk file is one `torch.save`d TensorDict with batch shape [N, T+1] (N episodes of T
steps; T+1 = 101 for mt80 and 501 for mt30 in the published files), keys:

| key | shape | dtype | row 0 |
|---|---|---|---|
| `obs` | [N, T+1, O] | float32 | first observation (zero-padded to the task set's obs dim) |
| `action` | [N, T+1, A] | float32 | NaN (row t holds the action that led to obs_t) |
| `reward` | [N, T+1] | float32 | NaN |
| `task` | [N, T+1] | int64 | task index, the same on every row of an episode |

This is TD-MPC2's own row convention, which is also ours (agents/batch.py) except that our
store keeps 0 where TD-MPC2 keeps NaN on row 0.

We read and write the plain dict-of-tensors form of that TensorDict (same keys, shapes and
dtypes), which loads with `torch.load(weights_only=True)`: the `tensordict` package is not a
dependency. A file holding a pickled TensorDict object needs `tensordict` to unpickle; convert
it once where tensordict is installed (`TENSORDICT_CONVERT` below says how).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

REQUIRED_KEYS = ("obs", "action", "reward", "task")
OPTIONAL_KEYS = ("terminated",)  # newer TD-MPC2 versions: float [N, T+1], NaN on row 0, 1 on a terminal last row
EXPECTED_LAYOUT = (
    "obs float32 [N, T+1, O], action float32 [N, T+1, A] (NaN on row 0), "
    "reward float32 [N, T+1] (NaN on row 0), task int64 [N, T+1]; "
    "optional terminated float32 [N, T+1]"
)
TENSORDICT_CONVERT = (
    "python -c \"import sys, torch; [torch.save(torch.load(f, weights_only=False).to_dict(), f[:-3] + '.dict.pt') "
    'for f in sys.argv[1:]]" chunk*.pt   # unpickles code: only for files you trust, where tensordict '
    "is installed; the converted files then load with weights_only=True"
)


class ChunkFormatError(ValueError):
    """A dataset file that does not have TD-MPC2's chunk layout; the message names what was expected."""


def read_chunk(path: str | os.PathLike, *, mmap: bool = True) -> dict[str, torch.Tensor]:
    """Load one chunk file (memory-mapped when possible, so only touched episodes are read) and
    check its layout. Raises ChunkFormatError naming the file, the offending key and what was expected."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except RuntimeError as exc:
        if mmap and "mmap" in str(exc):  # legacy (non-zip) torch.save format cannot be memory-mapped
            return read_chunk(path, mmap=False)
        raise ChunkFormatError(f"{path}: not a readable torch file ({exc})") from exc
    except Exception as exc:  # pickle.UnpicklingError from weights_only, EOFError, ...
        if "tensordict" in str(exc).lower():
            raise ChunkFormatError(
                f"{path} holds a pickled TensorDict object; this importer reads the dict-of-tensors form "
                f"({EXPECTED_LAYOUT}). Convert it with:\n  {TENSORDICT_CONVERT}"
            ) from exc
        raise ChunkFormatError(
            f"{path}: not a readable torch file of tensors ({type(exc).__name__}: {exc}); "
            f"expected a dict with {EXPECTED_LAYOUT}"
        ) from exc
    check_chunk(data, path)
    return data


def check_chunk(data, path: str | os.PathLike = "<chunk>") -> tuple[int, int, int, int]:
    """Check keys, shapes and dtypes; returns (N, T+1, O, A)."""
    if not isinstance(data, dict):
        raise ChunkFormatError(f"{path}: holds a {type(data).__name__}, expected a dict with {EXPECTED_LAYOUT}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    unknown = [k for k in data if k not in REQUIRED_KEYS + OPTIONAL_KEYS]
    if missing or unknown:
        raise ChunkFormatError(
            f"{path}: keys {sorted(data)}; missing {missing}, unexpected {unknown}. Expected {EXPECTED_LAYOUT}"
        )
    for k, v in data.items():
        if not isinstance(v, torch.Tensor):
            raise ChunkFormatError(f"{path}: '{k}' is a {type(v).__name__}, expected a tensor ({EXPECTED_LAYOUT})")
    obs = data["obs"]
    if obs.ndim != 3 or obs.shape[0] < 1 or obs.shape[1] < 2:
        raise ChunkFormatError(f"{path}: obs has shape {list(obs.shape)}, expected [N, T+1, O] with N >= 1, T >= 1")
    n, t1, o = obs.shape
    a = data["action"].shape[-1] if data["action"].ndim == 3 else -1
    expected = {"obs": (n, t1, o), "action": (n, t1, a), "reward": (n, t1), "task": (n, t1), "terminated": (n, t1)}
    for k, v in data.items():
        if tuple(v.shape) != expected[k] or (k == "action" and a < 1):
            want = "[N, T+1, A]" if k == "action" else "[N, T+1]"
            raise ChunkFormatError(
                f"{path}: {k} has shape {list(v.shape)}, expected {want} = "
                f"{[n, t1, 'A'] if k == 'action' else [n, t1]} (from obs {list(obs.shape)})"
            )
    for k in ("obs", "action", "reward", "terminated"):
        if k in data and not data[k].is_floating_point():
            raise ChunkFormatError(f"{path}: {k} has dtype {data[k].dtype}, expected a floating dtype (float32)")
    if data["task"].is_floating_point() or data["task"].dtype == torch.bool or data["task"].is_complex():
        raise ChunkFormatError(f"{path}: task has dtype {data['task'].dtype}, expected an integer dtype (int64)")
    return n, t1, o, a


def write_chunk(path: str | os.PathLike, data: dict[str, torch.Tensor]) -> Path:
    """Write a chunk (checked first) atomically: temp file + rename."""
    path = Path(path)
    check_chunk(data, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({k: v.contiguous() for k, v in data.items()}, tmp)
    os.replace(tmp, path)
    return path
