"""What every training entry point does: compose the typed config from configs/<name>.yaml and
the command line's Hydra overrides, check it, build the loop (which checks tasks, run directory
and data), start Ray only for backend=ray, train, and print the summary. A handled error is one
line on stderr and exit status 2, before anything is started or written."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

os.environ.setdefault("MUJOCO_GL", "egl")

_Schema = TypeVar("_Schema", bound="DataclassInstance")  # an entry point's options dataclass


def unreadable_override(argv: list[str]) -> str | None:
    """The message for the first override Hydra's grammar cannot read as one value, or None. The usual cause
    is a value holding ',' or '=' that reached Hydra unquoted (a task list, a task variant: the shell took the
    quotes off); the message shows the override quoted for Hydra and, around that, for the shell."""
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()

    def reads_as_one_value(arg: str) -> bool:
        try:
            return not parser.parse_override(arg).is_sweep_override()
        except HydraException:  # the grammar's error (OverrideParseException is one too)
            return False

    for arg in argv:
        if reads_as_one_value(arg):
            continue
        key, _, value = arg.partition("=")
        quoted = f"{key}='{value}'" if "'" not in value else f'{key}="{value}"'
        if not value or value.startswith(("[", "{")) or not reads_as_one_value(quoted):
            return None  # not a quoting matter (an unclosed list, no '='): Hydra's own message says what it is
        shell = f'"{quoted}"' if not any(c in quoted for c in '"$`\\!') else shlex.quote(quoted)
        return (
            f"Hydra cannot read the override {arg} as one value (',' and '=' in a value need quotes): "
            f"write {shell} (the inner quotes are Hydra's, the outer ones keep them from the shell)"
        )
    return None


def _exit_if_unreadable(argv: list[str]) -> None:
    message = unreadable_override(argv)
    if message is not None:
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def options(schema: type[_Schema], argv: list[str] | None = None) -> _Schema:
    """`schema` (a dataclass of an entry point's options) from the command line's Hydra overrides;
    a bad one is one line on stderr and exit status 2."""
    from distributed.config import ConfigError, compose_options

    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        import dataclasses

        def shown_default(f: dataclasses.Field) -> str:
            if f.default is not dataclasses.MISSING:
                return repr(f.default)
            if f.default_factory is not dataclasses.MISSING:
                return f"{f.default_factory()}"
            return "(required)"

        print(
            f"usage: {sys.argv[0]} key=value ...\n"
            + "\n".join(f"  {f.name}={shown_default(f)}" for f in dataclasses.fields(schema))
        )
        raise SystemExit(0)
    _exit_if_unreadable(argv)
    try:
        return compose_options(schema, argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def main(config_name: str, argv: list[str] | None = None) -> dict:
    from distributed.config import ConfigError, compose
    from distributed.loop import Loop

    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(
            f"usage: {sys.argv[0]} key=value ... (Hydra overrides of configs/{config_name}.yaml; keys: "
            f"distributed/config.py RunConfig)"
        )
        raise SystemExit(0)
    _exit_if_unreadable(argv)
    try:
        cfg = compose(config_name, argv)
        loop = Loop(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    how = None
    if cfg.backend == "ray":
        from distributed.ray_session import init_ray

        how = init_ray(cfg.ray.address, cfg.ray.num_cpus, cfg.ray.temp_dir)
        print("ray:", how)
    try:
        summary = loop.run()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as exc:  # noqa: BLE001  what the job died of: one line here, the traceback in errors.log
        loop.fail(exc)
        raise SystemExit(1) from None
    finally:
        loop.shutdown()
        if how is not None and how != "already initialized":  # a Ray this run started (or joined)
            from distributed.ray_session import shutdown_ray

            shutdown_ray()
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in summary.items()})
    return summary
