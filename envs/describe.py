"""Every task in words, built from data: what its body is and the instruction
(`envs/data/descriptions.json`), how a procedural variant differs from its base body
(`envs.variants.describe_variant`), and what its actuators drive (read from the compiled model,
`envs.body.load_embodiment`). A language-conditioned model embeds these texts
(embodiments/text_encoder.py).

    python -m envs.describe walker-walk 'walker-walk@leg=1.2,mass=0.8' mw-assembly

The most telling words come first: a text encoder reads a bounded number of tokens (all-MiniLM-L6-v2:
256), and the dog's or the CMU humanoid's list of 38-56 actuated joints is what is cut, not the
instruction.
"""

from __future__ import annotations

import functools
import json
import sys
from importlib import resources

from envs.body import load_embodiment
from envs.catalog import split_variant, task_entry, task_spec
from envs.errors import UnknownNameError
from envs.variants import describe_variant


@functools.cache
def _words() -> dict:
    return json.loads(resources.files("envs").joinpath("data/descriptions.json").read_text())


def body_words(embodiment: str) -> str:
    """What a base body is, in words ("Walker: a planar two-legged walker ...")."""
    base, _ = split_variant(embodiment)
    try:
        return _words()["bodies"][base]
    except KeyError:
        raise UnknownNameError("body description", base, _words()["bodies"]) from None


def instruction(task: str) -> str:
    """The instruction of a task (a variant has its base task's): "walk forward"."""
    base, _ = split_variant(task)
    task_entry(base)  # an unknown task names the closest tasks, not the closest instructions
    try:
        return _words()["instructions"][base]
    except KeyError:
        raise ValueError(
            f"task {base!r} has no instruction in envs/data/descriptions.json; add one under 'instructions'"
        ) from None


def actuated(task: str) -> tuple[str, ...]:
    """What the task's actuators drive (joint, tendon or site names; each once, in actuator order)."""
    return tuple(dict.fromkeys(a.target for a in load_embodiment(task).actuators))


@functools.cache
def task_description(task: str) -> str:
    """The text of `task`: body, variant, instruction, then its actuated joints. Deterministic: the
    same task (in any spelling of its variant) gives the same text."""
    spec = task_spec(task)  # canonical name: `leg=1.20,mass=1` and `leg=1.2` describe alike
    _, suffix = split_variant(spec.name)
    body = body_words(spec.embodiment)
    differs = describe_variant(suffix) if suffix else ""
    joints = actuated(spec.name)
    text = f"{body}" + (f"; {differs}" if differs else "") + f". Task: {instruction(spec.name)}."
    names = ", ".join(j.replace("_", " ") for j in joints)
    return text + f" Actuated ({len(joints)}): {names}."


def task_texts(tasks) -> dict[str, str]:
    """{task: its description} for task names (a run records these beside its text embeddings)."""
    return {t: task_description(t) for t in tasks}


def main(argv: list[str] | None = None) -> int:
    tasks = sys.argv[1:] if argv is None else argv
    if not tasks:
        print(
            "usage: python -m envs.describe <task> [<task> ...]   (e.g. 'walker-walk@leg=1.2,mass=0.8')",
            file=sys.stderr,
        )
        return 2
    for task in tasks:
        try:
            text = task_description(task)
        except (UnknownNameError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{task_spec(task).name}: {text}" if len(tasks) > 1 else text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
