"""The problem collector that every semantic check writes to, and small shared checks."""

from __future__ import annotations

import re
from difflib import get_close_matches
from typing import TYPE_CHECKING, Any

from ..errors import SpecProblem
from .formats import duration_problem
from .nodes import LDict, PathPart, dotted, where
from .schema import NAME_PATTERN

if TYPE_CHECKING:
    from ..plugin import Registry
    from ..plugins import Plugins

_NAME = re.compile(NAME_PATTERN)

Path_ = tuple[PathPart, ...]


class Checker:
    """Collects located problems (every check of ``semantic`` and ``placement`` adds here)."""

    def __init__(self, root: LDict, plugins: Plugins) -> None:
        self.root = root
        self.plugins = plugins
        self.problems: list[SpecProblem] = []

    def add(self, path: Path_, message: str, *, key: bool = False) -> None:
        location, shown = where(self.root, path, key=key)
        self.problems.append(SpecProblem(location, dotted(shown), message))

    def name(self, path: Path_, value: Any, what: str) -> None:
        if isinstance(value, str) and not _NAME.match(value):
            self.add(
                path,
                f"{what} {value!r} cannot be used in AWS resource names: use lowercase letters, "
                "digits and '-', starting and ending with a letter or digit",
                key=what != "project name",
            )

    def plugin(self, path: Path_, registry: Registry[Any], value: Any) -> None:
        if not isinstance(value, str) or value in registry:
            return
        known = registry.names()
        close = get_close_matches(value, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.add(
            path,
            f"unknown {registry.kind} {value!r} (known: {', '.join(known) or 'none'}){hint}",
        )


def check_duration(c: Checker, path: Path_, value: Any, allowed: str = "") -> None:
    """A duration like '30s', '5m', '2h' or '1h30m' (or nothing); ``allowed`` names the other
    accepted forms (``"'manual' or "``)."""
    if value is None:
        return
    problem = duration_problem(value)
    if problem is not None:
        c.add(path, problem.replace("expected ", f"expected {allowed}", 1))
