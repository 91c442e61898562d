"""The configuration reference (docs/reference/configuration.md) is generated from RunConfig and its nested
dataclasses (launch/config_doc.py); the committed page must be what the generator makes of them today."""

import difflib

from launch import config_doc


def test_configuration_reference_is_up_to_date():
    page = config_doc.render()
    committed = config_doc.PAGE.read_text() if config_doc.PAGE.exists() else ""
    if committed != page:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    page.splitlines(keepends=True),
                    "committed docs/reference/configuration.md",
                    "generated from the dataclasses",
                )
            )[:40]
        )
        raise AssertionError(
            "docs/reference/configuration.md disagrees with RunConfig (distributed/config.py and the dataclasses "
            f"it nests); regenerate it with `{config_doc.COMMAND}` and commit it:\n{diff}"
        )


def test_every_key_is_listed_once():
    keys = [k.key for g in config_doc.groups() for k in g.keys]
    assert len(keys) == len(set(keys))
    assert {"task", "steps", "planner.horizon", "optim.pi_scale", "model.task_conditioning", "ray.address"} <= set(keys)
    assert "planner" not in keys  # nested dataclasses are flattened, not listed themselves


def test_a_field_comment_becomes_its_doc():
    docs = {k.key: k for g in config_doc.groups() for k in g.keys}
    assert docs["steps"].doc.startswith("env (agent) steps over all envs")
    assert docs["steps"].type == "int" and docs["steps"].default == "100000"
    assert "overlapping by H rows" in docs["partial_episodes"].doc  # a continued trailing comment
    assert docs["run_dir"].doc.startswith("a path, a shared file-system path")  # a block above the field
    assert docs["num_shards"].section == "replay"  # a one-line comment above a field heads a group


def test_every_key_has_a_doc():
    """A new field needs a comment on its line (or a block of two or more lines above it, or a docstring)."""
    undocumented = [k.key for g in config_doc.groups() for k in g.keys if not k.doc.strip()]
    assert not undocumented, f"config keys without a doc (add a comment on the field's line): {undocumented}"
