"""Errors for bad task input: unknown names (with the closest known ones) and missing packages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UnknownNameError(KeyError):
    """A task, task set or variant parameter that does not exist; the message lists the closest names."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(set(known))
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        hint = f"closest: {', '.join(close)}" if close else f"known {kind}s include: {', '.join(known[:12])}"
        self.message = f"unknown {kind} {name!r}; {hint}"
        self._args = (kind, name, known)
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return self.message

    def __reduce__(self):  # rebuilt from its own arguments when it crosses a process (Ray)
        return type(self), self._args


class MissingPackageError(ImportError):
    """The simulator package a task needs is not installed; the message names what to install."""

    def __init__(self, task: str, package: str, pip_name: str):
        self._args = (task, package, pip_name)
        super().__init__(f"task {task!r} needs the package {package!r}, which is not installed: pip install {pip_name}")

    def __reduce__(self):
        return type(self), self._args
