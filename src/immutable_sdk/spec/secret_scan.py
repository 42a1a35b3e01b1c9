"""Where a spec holds secrets: ``validate``'s warnings, and the values the redactor must hide.

``scan_spec`` reports secrets written literally in image ``vars``, in fleet (and default) ``tags``
and in fleets' user data files, located, without ever quoting them. ``spec_secret_values`` lists
the values a loaded spec holds that must never be shown: those under secret-like keys anywhere
(``images.web.vars.db_password``), and secret-looking image vars and tag values; ``load_spec``
registers them with the redactor (``!secret`` and secret-named ``${VAR}`` are registered as the
files are read).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import Location, SpecProblem
from ..redaction.shapes import (
    KINDS,
    find_secrets,
    is_placeholder,
    is_secret_name,
)
from .nodes import LDict, dotted, where


class _Unset(Mapping[str, str]):
    """An environment in which every ``${VAR}`` is empty: only literal text is left to scan."""

    def __getitem__(self, key: str) -> str:
        return ""

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def get(self, key: str, default: Any = None) -> str:
        return ""


UNSET: Mapping[str, str] = _Unset()


class _Kinds:
    """Why ``key: value`` holds a secret, each value scanned once.

    A YAML alias puts one value object in many places (``v2: *big``): scanning it at each
    would cost the document's expanded size rather than its bytes, so what depends on the value
    alone is kept by the value's identity (the values stay alive in the document meanwhile).
    """

    def __init__(self) -> None:
        self.seen: dict[int, tuple[object, list[str], bool]] = {}

    def __call__(self, key: object, value: object) -> list[str]:
        """Kinds of ``secrets.KINDS``, most telling first."""
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            return []
        known = self.seen.get(id(value))
        if known is None or known[0] is not value:
            text = str(value)
            kinds = list(dict.fromkeys(f.kind for f in find_secrets(text)))
            known = self.seen[id(value)] = (value, kinds, bool(text) and not is_placeholder(text))
        _, kinds, named = known
        if not kinds and named and is_secret_name(key):
            return ["secret-name"]
        return kinds


def _scanned(root: Mapping[str, Any]) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """The image vars and the tags of fleets and defaults, as (path, value)."""
    images = root.get("images")
    for name, image in images.items() if isinstance(images, Mapping) else ():
        if isinstance(image, Mapping) and "vars" in image:
            yield from _leaves(image["vars"], ("images", name, "vars"))
    fleets = root.get("fleets")
    for name, fleet in fleets.items() if isinstance(fleets, Mapping) else ():
        if isinstance(fleet, Mapping) and "tags" in fleet:
            yield from _leaves(fleet["tags"], ("fleets", name, "tags"))
    defaults = root.get("defaults")
    if isinstance(defaults, Mapping) and "tags" in defaults:
        yield from _leaves(defaults["tags"], ("defaults", "tags"))


def spec_secret_values(root: Mapping[str, Any]) -> list[Any]:
    """Values of a spec document that must never be shown (see the module's docstring)."""
    kinds = _Kinds()
    values = [v for path, v in _leaves(root, ()) if path and is_secret_name(path[-1])]
    values += [v for path, v in _scanned(root) if kinds(path[-1], v)]
    unique = {id(v): v for v in values}  # an aliased value once, not once per alias
    return list(unique.values())


def scan_document(root: LDict) -> list[SpecProblem]:
    """Secrets written literally in image ``vars``, tags or user data files of a spec read
    with every ``${VAR}`` empty (``UNSET``; ``spec.load.scan_spec`` reads the files).

    Values that come from ``${VAR}`` are not reported: the environment is the place for them.
    The messages name the place and the kind of secret, never the secret.
    """
    problems: list[SpecProblem] = []
    kinds = _Kinds()
    for path, value in _scanned(root):
        found = kinds(path[-1], value)
        if not found:
            continue
        location, shown = where(root, path)
        tag = path[-2] == "tags"
        for kind in found:
            advice = (
                "tags are readable by anyone who can describe the resources; keep secrets out"
                if tag
                else "pass it with ${VAR} from the environment instead"
            )
            where_ = "in a tag" if tag else "written in the spec"
            problems.append(
                SpecProblem(location, dotted(shown), f"looks like {KINDS[kind]} {where_}; {advice}")
            )
    fleets = root.get("fleets")
    scanned: dict[Path, list[tuple[Location, str]]] = {}  # a file named by many fleets
    for name, fleet in fleets.items() if isinstance(fleets, LDict) else ():
        if isinstance(fleet, LDict) and isinstance(fleet.get("user_data"), str):
            path = ("fleets", name, "user_data")
            location, shown = where(root, path)
            file = Path(location.file).parent / os.path.expanduser(fleet["user_data"])
            if file not in scanned:
                scanned[file] = _scan_user_data(file)
            problems += [SpecProblem(at, dotted(shown), m) for at, m in scanned[file]]
    return sorted(set(problems))


def _leaves(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every scalar under ``node``, with its path."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    else:
        yield path, node


def _scan_user_data(file: Path) -> list[tuple[Location, str]]:
    try:
        text = file.read_text(errors="replace")
    except OSError:
        return []  # validation reports a missing file
    out = []
    for f in find_secrets(text):
        line = text.count("\n", 0, f.start) + 1
        column = f.start - (text.rfind("\n", 0, f.start) + 1) + 1
        out.append(
            (
                Location(str(file), line, column),
                f"looks like {KINDS[f.kind]} in user data; fetch it at boot from a secret "
                "store (SSM Parameter Store, Secrets Manager) instead",
            )
        )
    return out
