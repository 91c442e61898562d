"""MJCF's `<compiler settotalmass>` to the same effect, without MuJoCo's deprecation warning.

dm_control's cheetah and Gymnasium's half_cheetah ask the compiler to rescale every body's mass
and inertia to a total of 14 kg, and MuJoCo 3 warns on each compile of that attribute (one
console line per cheetah env build, plus a MUJOCO_LOG.TXT when dm_control is not imported).
We compile without the attribute and then apply MuJoCo's stated replacement, `mj_setTotalmass`
and `mj_setConst`, to the compiled model: its arrays come out identical (tests/envs/test_total_mass.py).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import mujoco

_ATTR = "settotalmass"


def split_total_mass(xml: str | bytes) -> tuple[str, float]:
    """(MJCF text without `settotalmass`, the total mass it asked for; 0.0 when absent)."""
    xml = xml.decode() if isinstance(xml, bytes) else xml  # dm_control reads its models as bytes
    if _ATTR not in xml:
        return xml, 0.0
    root = ET.fromstring(xml)
    total = 0.0
    for compiler in root.iter("compiler"):
        if _ATTR in compiler.attrib:
            total = float(compiler.attrib.pop(_ATTR))
    return ET.tostring(root, encoding="unicode"), max(total, 0.0)


def pop_total_mass(spec: mujoco.MjSpec) -> float:
    """Switch `settotalmass` off in `spec` (in place); returns the total it asked for (0.0: none)."""
    total = spec.compiler.settotalmass
    spec.compiler.settotalmass = -1.0  # MuJoCo's "ignore" value
    return max(float(total), 0.0)


def set_total_mass(model: mujoco.MjModel, total: float) -> None:
    """Rescale the compiled model's body masses and inertias to `total` (nothing when <= 0) and
    recompute the constants derived from them, as the compiler's `settotalmass` did."""
    if total > 0:
        mujoco.mj_setTotalmass(model, total)
        mujoco.mj_setConst(model, mujoco.MjData(model))  # scratch data: the env's own data is untouched
