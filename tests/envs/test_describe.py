"""Every task and variant of the catalogue has a description built from its data, and
`python -m envs.describe` prints it or names the closest tasks."""

import os
import subprocess
import sys

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest

from envs import task_names, task_spec
from envs.body import load_embodiment
from envs.describe import body_words, instruction, main, task_description
from envs.task_set import load_split, split_names
from envs.variants import describe_variant


def catalogue_variants() -> list[str]:
    """Every procedural variant the catalogue names (the splits' bodies)."""
    return sorted({t for s in split_names() for t in (*load_split(s).train, *load_split(s).held_out) if "@" in t})


def test_every_catalogue_task_has_its_own_description():
    texts = {t: task_description(t) for t in task_names()}
    for task, text in texts.items():
        spec = task_spec(task)
        assert text.startswith(body_words(spec.embodiment)) and f"Task: {instruction(task)}." in text, task
        if spec.domain != "metaworld":  # Sawyer's arm moves by mocap: only its gripper has actuators
            assert f"Actuated ({len(load_embodiment(task).actuators)})" in text, task
    dupes = {t for t in texts if list(texts.values()).count(texts[t]) > 1}
    assert not dupes, f"tasks a language-conditioned model could not tell apart: {sorted(dupes)}"


def test_every_catalogue_variant_says_how_it_differs():
    variants = catalogue_variants()
    assert len(variants) >= 10
    for task in variants:
        base, suffix = task.split("@")
        text, base_text = task_description(task), task_description(base)
        differs = describe_variant(suffix)
        assert differs and f"; {differs}." in text and text != base_text, task
        # the rest is the base body's: a variant keeps its joints and instruction
        assert text.replace(f"; {differs}", "") == base_text


@pytest.mark.parametrize(
    "suffix, words",
    [
        ("leg=1.2,mass=0.8", "legs 20% longer, 20% lighter"),
        ("mass=1.3", "30% heavier"),
        ("gear=0.6,damping=1.5", "actuators 40% weaker, joint damping 50% higher"),
        ("length=2.5", "every segment 2.5x as long"),
        ("arm=0.5", "arms 0.5x as long"),
        ("leg=1", ""),
    ],
)
def test_variant_words(suffix, words):
    assert describe_variant(suffix) == words


def test_spellings_of_one_variant_describe_alike():
    assert task_description("walker-walk@mass=0.80,leg=1.2") == task_description("walker-walk@leg=1.2,mass=0.8")
    assert task_description("walker-walk@leg=1") == task_description("walker-walk")


def test_cli_prints_a_description_and_names_close_tasks_for_an_unknown_one(capsys):
    assert main(["walker-walk@leg=1.2"]) == 0
    assert capsys.readouterr().out.strip() == task_description("walker-walk@leg=1.2")
    assert main(["walkr-walk"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown task 'walkr-walk'" in err and "walker-walk" in err
    assert main(["mw-assembly@mass=2"]) == 2
    assert "no procedural variants" in capsys.readouterr().err


def test_module_runs_as_a_command():
    out = subprocess.run(
        [sys.executable, "-m", "envs.describe", "cup-catch"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == task_description("cup-catch")


def test_envs_does_not_import_embodiments():
    """The import arrows run from embodiments down to envs only (descriptions included)."""
    code = (
        "import sys, envs, envs.describe; envs.describe.task_description('walker-walk@leg=1.2'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'embodiments'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
