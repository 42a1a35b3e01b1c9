"""Spec documents that remember where each value was written.

The YAML reader builds ``LDict`` and ``LList`` containers: ordinary dicts and lists that also
hold the position (file, line, column; 1-based) of each key and value they contain. Overlays and
``defaults:`` are merged container by container, so every value keeps the position of the file
that wrote it, and a lookup of a path costs one step per path element.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import Location

Pos = tuple[str, int, int]  # file, line, column (1-based)
PathPart = str | int


class _Repr(reprlib.Repr):
    """Short reprs: YAML aliases can make a few bytes stand for gigabytes of nested data, and
    jsonschema quotes the value in every error message it words."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxdict, self.maxlist = 3, 6, 8
        self.maxstring = self.maxother = 80

    def repr_LDict(self, x: Any, level: int) -> str:  # reprlib finds it by type name
        return self.repr_dict(x, level)

    def repr_LList(self, x: Any, level: int) -> str:  # reprlib finds it by type name
        return self.repr_list(x, level)


_short = _Repr()


class LDict(dict[str, Any]):
    """A mapping read from a spec file, with the position of each key and value.

    ``origins`` names keys whose value was inherited from another part of the document (the
    ``defaults:`` block): messages about them give the path where they were written.
    """

    __slots__ = ("key_pos", "origins", "pos", "value_pos")

    def __init__(self, pos: Pos) -> None:
        super().__init__()
        self.pos = pos
        self.key_pos: dict[str, Pos] = {}
        self.value_pos: dict[str, Pos] = {}
        self.origins: dict[str, tuple[PathPart, ...]] = {}

    def put(self, key: str, value: Any, key_pos: Pos, value_pos: Pos) -> None:
        self[key] = value
        self.key_pos[key] = key_pos
        self.value_pos[key] = value_pos

    def __repr__(self) -> str:
        return _short.repr(self)


class LList(list[Any]):
    """A sequence read from a spec file, with the position of each item."""

    __slots__ = ("item_pos", "pos")

    def __init__(self, pos: Pos) -> None:
        super().__init__()
        self.pos = pos
        self.item_pos: list[Pos] = []

    def push(self, value: Any, pos: Pos) -> None:
        self.append(value)
        self.item_pos.append(pos)

    def __repr__(self) -> str:
        return _short.repr(self)


def deep_merge(base: LDict, over: LDict, *, origin: tuple[PathPart, ...] | None = None) -> LDict:
    """``over`` merged onto ``base``: maps merge key by key, anything else (lists too) is replaced.

    When ``origin`` is given (the path of ``base`` in the document), keys taken from ``base`` are
    marked as inherited from there. Neither input is changed; untouched subtrees are shared.
    """
    merged = LDict(over.pos)
    for key, value in base.items():
        merged.put(key, value, base.key_pos[key], base.value_pos[key])
        if origin is not None:
            merged.origins[key] = (*origin, key)
        elif key in base.origins:
            merged.origins[key] = base.origins[key]
    for key, value in over.items():
        old = merged.get(key)
        if isinstance(old, LDict) and isinstance(value, LDict):
            sub_origin = None if origin is None else (*origin, key)
            value = deep_merge(old, value, origin=sub_origin)
        merged.put(key, value, over.key_pos[key], over.value_pos[key])
        merged.origins.pop(key, None)
        if key in over.origins:
            merged.origins[key] = over.origins[key]
    return merged


def where(
    root: Any, path: Sequence[PathPart], *, key: bool = False
) -> tuple[Location, tuple[PathPart, ...]]:
    """The location of the node at ``path`` and the path to name it by in messages.

    ``key=True`` points at the key that names the node (the unknown key itself; the ``web:`` of
    a map missing a key) rather than at its value. The path is rewritten to where the node was
    written when it was inherited (``defaults.strategy.pause`` rather than
    ``fleets.web.strategy.pause``). A path that leaves the document stops at the last node found.
    """
    node = root
    pos: Pos = getattr(root, "pos", ("<spec>", 0, 0))
    shown: list[PathPart] = []
    for part in path:
        if isinstance(node, LDict) and isinstance(part, str) and part in node:
            pos = node.key_pos[part] if key else node.value_pos[part]
            if part in node.origins:
                shown = list(node.origins[part])
            else:
                shown.append(part)
            node = node[part]
        elif isinstance(node, LList) and isinstance(part, int) and 0 <= part < len(node):
            pos = node.item_pos[part]
            shown.append(part)
            node = node[part]
        else:
            break
    return Location(*pos), tuple(shown)


def dotted(path: Iterable[PathPart]) -> str:
    """``('fleets', 'web', 'health', 'checks', 0)`` -> ``fleets.web.health.checks[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part:  # an empty key (refused, but named)
            out += "['']"
        else:
            out += f".{part}" if out else str(part)
    return out


def plain(value: Any) -> Any:
    """A copy made of ordinary dicts and lists, for the model and for plugins."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
