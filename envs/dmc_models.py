"""The MJCF behind each dm_control task, so a procedural variant can edit it and reload physics."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import mujoco

# Domains whose model depends on the task; every other domain has one `get_model_and_assets()`.
_TASK_MODELS: dict[tuple[str, str], Callable[[], tuple[str, dict]]] = {
    ("cartpole", "two_poles"): lambda: _suite("cartpole").get_model_and_assets(num_poles=2),
    ("cartpole", "three_poles"): lambda: _suite("cartpole").get_model_and_assets(num_poles=3),
    ("swimmer", "swimmer6"): lambda: _suite("swimmer").get_model_and_assets(6),
    ("swimmer", "swimmer15"): lambda: _suite("swimmer").get_model_and_assets(15),
    ("stacker", "stack_2"): lambda: (_suite("stacker").make_model(n_boxes=2), _suite("common").ASSETS),
    ("stacker", "stack_4"): lambda: (_suite("stacker").make_model(n_boxes=4), _suite("common").ASSETS),
    ("reacher", "three_easy"): lambda: (_reacher3(), {}),
    ("reacher", "three_hard"): lambda: (_reacher3(), {}),
}
_NO_STATIC_MODEL = {"lqr"}  # lqr builds a random chain per seed: there is no base body to edit


def _suite(module: str):
    return importlib.import_module(f"dm_control.suite.{module}")


def _reacher3() -> str:
    from envs.dmc_custom.reacher import three_link_xml

    return three_link_xml()


def model_and_assets(domain: str, task_name: str) -> tuple[str, dict]:
    """(MJCF string, assets) of the dm_control task's body."""
    if domain in _NO_STATIC_MODEL:
        raise ValueError(
            f"dm_control domain {domain!r} generates a new random model per seed; "
            "it has no fixed body to build variants of"
        )
    if (domain, task_name) in _TASK_MODELS:
        return _TASK_MODELS[(domain, task_name)]()
    return _suite(domain).get_model_and_assets()


def edited_xml(domain: str, task_name: str, edit: Callable[[mujoco.MjSpec], None]) -> tuple[str, dict, float]:
    """The task's MJCF after `edit` has changed its `mujoco.MjSpec` in place, its assets, and the
    total mass to apply after compiling (`envs.total_mass.set_total_mass`; 0.0 for none): the MJCF
    carries no deprecated `settotalmass`."""
    from envs.total_mass import pop_total_mass

    xml, assets = model_and_assets(domain, task_name)
    spec = mujoco.MjSpec.from_string(xml, assets)
    edit(spec)
    total_mass = pop_total_mass(spec)  # before to_xml, which compiles
    return spec.to_xml(), assets, total_mass
