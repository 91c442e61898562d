"""The configuration reference, generated from `RunConfig` (distributed/config.py).

    python -m launch.config_doc            # print the page (Markdown)
    python -m launch.config_doc --write    # write docs/reference/configuration.md
    python -m launch.config_doc --check    # exit 1 if the committed page differs from the dataclasses

Every key of a run's config, nested dataclasses flattened as dotted keys (`planner.horizon`), with its
type, its default and its doc. A field's doc is read from the dataclass's source: the comment on the
field's own lines (and comment lines right after it that continue it, indented past the `#`), else a
block of two or more comment lines right above it, else a string literal right after it (an attribute
docstring). A single comment line above a field is a section heading: it names the group of fields
that follows (`# replay`) and is printed as a group heading, not as that one field's doc. A field with
none of these gets an empty doc. The Hydra-mergeable options built at run time from the agent's frozen
configs (`PlannerOptions` from `agents.config.PlannerConfig`, ...) take their docs from those classes.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import sys
import textwrap
import tokenize
import types
import typing
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "configuration.md"
COMMAND = "python -m launch.config_doc --write"


@dataclasses.dataclass
class Key:
    """One row of the reference."""

    key: str  # dotted
    type: str
    default: str
    doc: str
    section: str  # the group heading above it in its class ("" if none)


@dataclasses.dataclass
class Group:
    """The keys of one dataclass: the top level (prefix "") or one nested field (`planner`)."""

    prefix: str
    intro: str  # the nesting field's own doc, the class it was read from, and the class docstring
    keys: list[Key]


def _has_source(cls: type) -> bool:
    try:
        inspect.getsource(cls)
    except (OSError, TypeError):  # no file behind it: the caller looks elsewhere, or raises LookupError
        return False
    return True


def _source_class(cls: type) -> type:
    """The class whose source holds `cls`'s field comments: itself, or for the options that
    distributed/config.py builds with `dataclasses.make_dataclass`, the agent config they copy."""
    if _has_source(cls):
        return cls
    import agents.config  # a class made at run time (make_dataclass): read the agent config it copies

    origin = getattr(agents.config, cls.__name__.replace("Options", "Config").replace("Overrides", "Config"), None)
    if not isinstance(origin, type) or not dataclasses.is_dataclass(origin):
        raise LookupError(f"no source found for the dataclass {cls.__name__}: teach launch/config_doc.py where it is")
    return origin


def field_docs(cls: type) -> tuple[dict[str, str], dict[str, str]]:
    """(doc, section heading) of every field of the dataclass `cls`, read from its source."""
    src = textwrap.dedent(inspect.getsource(cls))
    lines = src.splitlines()
    comments: dict[int, tuple[int, str]] = {}  # line (1-based) -> (column, text after '#')
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = (tok.start[1], tok.string[1:])
    own_line = {n for n, (col, _) in comments.items() if not lines[n - 1][:col].strip()}  # comment-only lines
    body = next(n for n in ast.parse(src).body if isinstance(n, ast.ClassDef)).body
    docs: dict[str, str] = {}
    sections: dict[str, str] = {}
    section = ""
    continued: set[int] = set()  # comment-only lines that continue a field's trailing comment
    for i, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        name = node.target.id
        first, last = node.lineno, node.end_lineno or node.lineno
        parts = [comments[n][1].strip() for n in range(first, last + 1) if n in comments]
        n = last + 1
        while parts and n in own_line and comments[n][1].startswith("  "):  # `#    more of the comment`
            parts.append(comments[n][1].strip())
            continued.add(n)
            n += 1
        above, n = [], first - 1
        while n in own_line and n not in continued:
            above.insert(0, comments[n][1].strip())
            n -= 1
        if len(above) == 1:
            section = above[0]
        elif len(above) > 1 and not parts:
            parts = above
        nxt = body[i + 1] if i + 1 < len(body) else None
        if not parts and isinstance(nxt, ast.Expr):
            value = nxt.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                parts = [inspect.cleandoc(value.value)]
        docs[name] = " ".join(p for p in parts if p)
        sections[name] = section
    return docs, sections


def type_name(tp) -> str:
    """A type as written in the source: `int | None`, `dict[str, float]`."""
    if tp is type(None):
        return "None"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in args) + "]"
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(tp, "__name__", str(tp))


def _default(f: dataclasses.Field) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _nested(tp) -> type | None:
    """The dataclass a field holds (also through `X | None`), else None."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp
    inner = [a for a in typing.get_args(tp) if a is not type(None)]
    return inner[0] if len(inner) == 1 and isinstance(inner[0], type) and dataclasses.is_dataclass(inner[0]) else None


def groups(schema: type | None = None) -> list[Group]:
    """Every key of `schema` (default `RunConfig`), one group per dataclass, the top level first."""
    if schema is None:
        from distributed.config import RunConfig

        schema = RunConfig
    out: list[Group] = []

    def walk(cls: type, prefix: str, intro: str) -> None:
        origin = _source_class(cls)
        docs, sections = field_docs(origin)
        hints = typing.get_type_hints(cls)
        doc = inspect.getdoc(origin) or ""
        if doc == inspect.getdoc(object) or doc.startswith(f"{origin.__name__}("):  # no docstring of its own
            doc = ""
        source = f"Dataclass `{origin.__module__}.{origin.__qualname__}`."
        if origin is not cls:
            defaults = [_default(f) for f in dataclasses.fields(cls)]
            source = (
                f"Dataclass `{cls.__name__}`, built by `distributed/config.py` from `{origin.__module__}."
                f"{origin.__qualname__}` (its docs are read there): "
                + (
                    "every field defaults to None, which keeps the model preset's value."
                    if all(d is None for d in defaults)
                    else "same fields and defaults."
                )
            )
        parts = [f"`{prefix[:-1]}`: {intro}." if intro else "", source, doc]
        group = Group(prefix, " ".join(filter(None, parts)), [])
        out.append(group)
        later = []
        for f in dataclasses.fields(cls):
            key = f"{prefix}{f.name}"
            sub = _nested(hints[f.name])
            if sub is not None:
                later.append((sub, f"{key}.", docs.get(f.name, "")))
                continue
            value = _default(f)
            group.keys.append(
                Key(
                    key,
                    type_name(hints[f.name]),
                    "(required)" if value is dataclasses.MISSING else repr(value),
                    docs.get(f.name, ""),
                    sections.get(f.name, ""),
                )
            )
        for sub, sub_prefix, sub_intro in later:
            walk(sub, sub_prefix, sub_intro)

    walk(schema, "", "")
    return out


def _cell(text: str) -> str:
    """`text` as one Markdown table cell: pipes, asterisks and angle brackets kept as text."""
    for a, b in (("|", "\\|"), ("*", "\\*"), ("<", "&lt;"), (">", "&gt;"), ("\n", " ")):
        text = text.replace(a, b)
    return " ".join(text.split())


def render(schema: type | None = None) -> str:
    """The reference page, Markdown."""
    gs = groups(schema)
    keys = [k for g in gs for k in g.keys]
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by launch/config_doc.py from the dataclasses; do not edit by hand.",
        f"     Regenerate: {COMMAND} (tests/docs/test_config_reference.py checks it). -->",
        "",
        "Every key of a run's configuration (`RunConfig` in `distributed/config.py`, a Hydra structured config),",
        "as a Hydra override takes it: `steps=200000 planner.num_samples=256`. Types are checked and unknown keys",
        "refused when the config is composed; ranges are checked before anything starts (`check_config`). The",
        "docs are the comments in the dataclasses' source; a blank doc means the field has none.",
        f"{len(keys)} keys, {sum(not k.doc for k in keys)} without a doc.",
        "",
    ]
    for g in gs:
        title = "Top-level keys" if not g.prefix else f"`{g.prefix}*`"
        lines += [f"## {title}", "", _cell(g.intro), ""]
        section: str | None = None
        for k in g.keys:
            if k.section != section:
                if section is not None:
                    lines.append("")
                if k.section:
                    lines += [f"### {_cell(k.section)}", ""]
                lines += ["| key | type | default | doc |", "|---|---|---|---|"]
                section = k.section
            lines.append(f"| `{k.key}` | `{_cell(k.type)}` | `{_cell(k.default)}` | {_cell(k.doc)} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launch.config_doc", description=(__doc__ or "").splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {PAGE.relative_to(PAGE.parents[2])}")
    mode.add_argument("--check", action="store_true", help="exit 1 if the committed page is out of date")
    args = parser.parse_args(argv)
    page = render()
    if args.write:
        PAGE.parent.mkdir(parents=True, exist_ok=True)
        PAGE.write_text(page)
        print(f"wrote {PAGE}")
    elif args.check:
        if not PAGE.exists() or PAGE.read_text() != page:
            print(f"{PAGE} is out of date with RunConfig: run {COMMAND}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
