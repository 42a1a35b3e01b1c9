"""Plugins' own checks of their blocks (``registry.add(..., check=...)``), located in the spec.

A check may read its block's values without guarding their types: on a block that passed its
schema, a check that raises is a bug in its plugin (PluginError names the plugin); on a block
with schema problems it is run all the same, so that every problem is reported at once, but
what it says about a value the schema already refused, or an exception, is dropped.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PluginError, SpecProblem
from ..plugin import CheckContext
from .checker import Checker, Path_
from .nodes import LDict, LList, dotted, plain, where

if TYPE_CHECKING:
    from ..plugin import Registry
    from ..plugins import Plugins


def plugin_problems(root: LDict, plugins: Plugins, invalid: Collection[str]) -> list[SpecProblem]:
    """What the plugins' checks find; ``invalid`` holds the dotted paths with schema problems."""
    c = Checker(root, plugins)
    invalid = _with_ancestors(invalid)
    for path, registry, key, block, fleet in _blocks(root, plugins):
        name = block.get(key)
        if not isinstance(name, str) or name not in registry:
            continue
        entry = registry.get(name)
        if entry.check is None:
            continue
        doubtful = _has_problems(root, path, invalid)
        context = CheckContext(plain(fleet), _folder(root, (*path, key)))
        try:
            found = list(entry.check(plain(block), context))
        except Exception as exc:
            if doubtful:
                continue  # it read a value the schema refused
            raise PluginError(
                entry.plugin,
                f"its check of {registry.kind} {name!r} failed: {exc!r}",
                distribution=entry.distribution,
            ) from exc
        for problem in found:
            full = (*path, *problem.path)
            if doubtful and _has_problems(root, full, invalid):
                continue
            c.add(full, problem.message)
    return c.problems


def _blocks(
    root: LDict, plugins: Plugins
) -> Iterator[tuple[Path_, Registry[Any], str, LDict, LDict]]:
    """(path, registry, discriminator, block, fleet) for every plugin block of the document."""
    none = LDict(root.pos)
    images = root.get("images")
    for name, image in images.items() if isinstance(images, LDict) else ():
        if isinstance(image, LDict):
            yield ("images", name), plugins.builders, "builder", image, none
    fleets = root.get("fleets")
    for name, fleet in fleets.items() if isinstance(fleets, LDict) else ():
        if not isinstance(fleet, LDict):
            continue
        strategy = fleet.get("strategy")
        if isinstance(strategy, LDict):
            yield ("fleets", name, "strategy"), plugins.strategies, "type", strategy, fleet
        health = fleet.get("health")
        checks = health.get("checks") if isinstance(health, LDict) else None
        for i, check in enumerate(checks if isinstance(checks, LList) else ()):
            if isinstance(check, LDict):
                path: Path_ = ("fleets", name, "health", "checks", i)
                yield path, plugins.health_checks, "type", check, fleet
    notifiers = root.get("notifiers")
    for i, notifier in enumerate(notifiers if isinstance(notifiers, LList) else ()):
        if isinstance(notifier, LDict):
            yield ("notifiers", i), plugins.notifiers, "type", notifier, none


def _folder(root: LDict, path: Path_) -> Path:
    """The folder of the file that wrote the node at ``path`` (as ``build`` resolves it)."""
    return Path(os.path.abspath(where(root, path)[0].file)).parent


def _with_ancestors(paths: Collection[str]) -> set[str]:
    """The dotted paths and every path above them (``a.b[0].c`` -> ``a``, ``a.b``, ``a.b[0]``)."""
    out: set[str] = set()
    for path in paths:
        out.add(path)
        for i, ch in enumerate(path):
            if ch in ".[" and i:
                out.add(path[:i])
    return out


def _has_problems(root: LDict, path: Path_, invalid: Collection[str]) -> bool:
    """Whether the node at ``path`` or anything under it has a problem (``invalid`` holds the
    problems' paths and their ancestors)."""
    return dotted(where(root, path)[1]) in invalid
