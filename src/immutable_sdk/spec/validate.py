"""JSON Schema errors turned into located problems in the words of STYLE.md.

The whole document is validated at once (``iter_errors``) against the composed schema; every
error is mapped to the node that caused it: the unknown key itself, the map that misses a key,
the value of the wrong type. ``format: file`` values are collected here and checked against the
folder of the file that wrote them.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from difflib import get_close_matches
from typing import TYPE_CHECKING, Any

from jsonschema import (  # type: ignore[import-untyped, unused-ignore]
    Draft202012Validator,
    FormatChecker,
    ValidationError,
)
from jsonschema.exceptions import best_match  # type: ignore[import-untyped, unused-ignore]
from jsonschema.validators import extend  # type: ignore[import-untyped, unused-ignore]

from ..errors import SpecProblem
from ..units import parse_duration, parse_size
from .fastcheck import surely_valid
from .nodes import LDict, PathPart, dotted, where
from .schema import build_schema

if TYPE_CHECKING:
    from ..plugins import Plugins

FORMAT_EXPECT = {
    "duration": "a duration like '30s', '5m' or '2h'",
    "size": "a count or a percentage like '25%'",
}
_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}
_BOUNDS = {
    "minimum": ">=",
    "maximum": "<=",
    "exclusiveMinimum": ">",
    "exclusiveMaximum": "<",
}
# When one node has several errors, keep the most telling one.
_RANK = {"format": 0, "type": 1, "const": 2, "enum": 2, "pattern": 3}

_cache: tuple[weakref.ref[Any], Any] | None = None


def describe(value: Any) -> str:
    """A value as messages quote it: ``'quarter'``, ``a list``, ``42``."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _duration(value: object) -> bool:
    try:
        parse_duration(value)
    except ValueError:
        return False
    return True


def _size(value: object) -> bool:
    if isinstance(value, float):
        return False
    try:
        parse_size(value)
    except ValueError:
        return False
    return True


def _file(value: object) -> bool:
    return not isinstance(value, str)  # every path is reported, then checked on disk


FORMATS = {"duration": _duration, "size": _size, "file": _file}


class _Run(threading.local):
    """What one validation shares with the keyword functions (per thread)."""

    def __init__(self) -> None:
        # (subschema id, value id) -> errors, and the fast check's answers. A YAML alias puts
        # one object in many places, and defaults share subtrees between fleets: each is
        # validated once per run (the document keeps the objects alive meanwhile), so the
        # cost follows the document's bytes, not its expanded size.
        self.memo: dict[tuple[int, int], list[Any]] = {}
        self.fast: dict[tuple[int, int], bool] = {}
        self.formats: dict[str, Any] = dict(FORMATS)  # the fast check's formats


_run = _Run()


def _format_checker() -> Any:
    checker = FormatChecker(formats=())
    for name, check in FORMATS.items():
        checker.checks(name)(check)
    return checker


def validator_for(plugins: Plugins) -> Any:
    """The compiled validator for these plugins (cached for the last Plugins object).

    Its ``x-plugin`` keyword validates a plugin block against the schema of the plugin the
    block names, found by name: one lookup however many plugins are installed.
    """
    global _cache
    if _cache is not None and _cache[0]() is plugins:
        return _cache[1]
    schema = build_schema(plugins, editor=False)
    defs = schema["$defs"]

    def plugin_keyword(validator: Any, spec: Any, instance: Any, _schema: Any) -> Any:
        name = instance.get(spec["key"]) if isinstance(instance, dict) else None
        ref = spec["schemas"].get(name) if isinstance(name, str) else None
        if ref is not None:
            yield from validator.descend(instance, defs[ref.rsplit("/", 1)[1]])

    def fast_properties(validator: Any, properties: Any, instance: Any, _schema: Any) -> Any:
        # Most values are valid: ask the fast check before jsonschema's bookkeeping.
        if not isinstance(instance, dict):
            return
        for prop, subschema in properties.items():
            if prop not in instance:
                continue
            value = instance[prop]
            if surely_valid(subschema, value, _run.formats, defs, _run.fast):
                continue
            yield from validator.descend(value, subschema, path=prop, schema_path=prop)

    cls = extend(Draft202012Validator, {"x-plugin": plugin_keyword, "properties": fast_properties})
    descend = cls.descend

    def memo_descend(
        self: Any,
        instance: Any,
        schema: Any,
        path: Any = None,
        schema_path: Any = None,
        resolver: Any = None,
    ) -> Iterator[Any]:
        if not isinstance(instance, (dict, list, str)):
            yield from descend(self, instance, schema, path, schema_path, resolver)
            return
        key = (id(schema), id(instance))
        errors = _run.memo.get(key)
        if errors is None:
            errors = _run.memo[key] = list(descend(self, instance, schema, resolver=resolver))
        for error in errors:
            error = _copied(error)
            if path is not None:
                error.path.appendleft(path)
            if schema_path is not None:
                error.schema_path.appendleft(schema_path)
            yield error

    cls.descend = memo_descend
    validator = cls(schema, format_checker=_format_checker())
    _cache = (weakref.ref(plugins), validator)
    return validator


def schema_problems(
    root: LDict, plugins: Plugins, files: Sequence[str] = ()
) -> list[tuple[int, SpecProblem]]:
    """Every schema error in the document, located and ranked: for one node, lower is better.

    Ranks below 5 are about a value (several may hit the same node: keep the first); 5 is about
    a map's keys (unknown or missing), each worth its own message. ``files`` are the spec's
    files: a path that exists next to every one of them needs no closer look.
    """
    ranked: list[tuple[int, SpecProblem]] = []
    validator = validator_for(plugins)
    _run.memo.clear()
    _run.fast.clear()
    _run.formats = {**FORMATS, "file": _exists_next_to(files)}
    try:
        errors = list(validator.iter_errors(root))
    finally:
        _run.memo.clear()
        _run.fast.clear()
    for error in errors:
        for rank, path, key, message in _explain(error):
            location, shown = where(root, path, key=key)
            ranked.append((rank, SpecProblem(location, dotted(shown), message)))
        if error.validator == "format" and error.validator_value == "file":
            problem = _missing_file(root, tuple(error.absolute_path), error.instance)
            if problem is not None:
                ranked.append((0, problem))
    ranked.sort(key=lambda item: item[0])
    return ranked


def _copied(error: ValidationError) -> ValidationError:
    """A copy of a remembered error whose paths can grow (a deep copy would copy the value)."""
    copy = ValidationError(
        error.message,
        validator=error.validator,
        path=error.path,
        cause=error.cause,
        context=[_copied(e) for e in error.context],
        validator_value=error.validator_value,
        instance=error.instance,
        schema=error.schema,
        schema_path=error.schema_path,
        type_checker=error._type_checker,
    )
    return copy


def _exists_next_to(files: Sequence[str]) -> Callable[[object], bool]:
    folders = {os.path.dirname(os.path.abspath(f)) for f in files}

    @functools.lru_cache(maxsize=1024)
    def exists(value: str) -> bool:
        path = os.path.expanduser(value)
        return all(os.path.isfile(os.path.join(d, path)) for d in folders)

    return lambda value: bool(folders) and isinstance(value, str) and exists(value)


def _missing_file(root: LDict, path: tuple[PathPart, ...], value: str) -> SpecProblem | None:
    location, shown = where(root, path)
    base = os.path.dirname(os.path.abspath(location.file))
    full = os.path.join(base, os.path.expanduser(value))
    if os.path.isfile(full):
        return None
    if os.path.isdir(full):
        what = "is a directory, not a file"
    elif os.path.exists(full):  # a FIFO or a device: reading it could block or never end
        what = "is not a regular file"
    else:
        what = "does not exist"
    return SpecProblem(location, dotted(shown), f"file {value!r} {what} (looked at {full})")


def _explain(error: ValidationError) -> Iterator[tuple[int, tuple[PathPart, ...], bool, str]]:
    """(rank, path, point at key?, message) for one jsonschema error."""
    path = tuple(error.absolute_path)
    kind = str(error.validator)
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = sorted(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        for key in instance:
            if key in known or any(re.search(p, key) for p in patterns):
                continue
            yield 5, (*path, key), True, f"unknown key {key!r}{_hint(key, known)}"
        return
    if kind == "required" and isinstance(instance, dict):
        missing = [k for k in error.validator_value if k not in instance]
        names = ", ".join(repr(k) for k in missing)
        yield 5, path, True, f"missing required key{'s' if len(missing) > 1 else ''} {names}"
        return
    if kind in ("anyOf", "oneOf") and error.context:
        direct = [e for e in error.context if not e.relative_path]
        if (
            direct
            and all(e.validator == "type" for e in direct)
            and len(direct) == len(error.context)
        ):
            types = [t for e in direct for t in _types(e.validator_value)]
            words = " or ".join(dict.fromkeys(_TYPE_WORDS.get(t, t) for t in types))
            yield 1, path, False, f"expected {words}, got {describe(instance)}"
        else:  # the branch whose type fits the value says what is wrong with it
            fitting = [e for e in error.context if e.validator != "type"] or error.context
            yield from _explain(best_match(fitting))
        return
    if kind == "format" and error.validator_value == "file":
        return  # checked on disk by the caller
    rank = _RANK.get(kind, 4)
    got = describe(instance)
    expect = schema.get("x-expect")
    if kind == "format" and error.validator_value in FORMAT_EXPECT:
        expect = FORMAT_EXPECT[str(error.validator_value)]
    if kind == "pattern" and not expect:
        expect = _pattern_meaning(str(error.validator_value))
    if expect:
        yield rank, path, False, f"expected {expect}, got {got}"
    elif kind == "type":
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in _types(error.validator_value))
        yield rank, path, False, f"expected {words}, got {got}"
    elif kind == "enum":
        options = ", ".join(repr(v) for v in error.validator_value)
        yield rank, path, False, f"expected one of {options}, got {got}"
    elif kind == "const":
        yield rank, path, False, f"expected {error.validator_value!r}, got {got}"
    elif kind == "pattern":
        yield rank, path, False, f"expected a string matching {error.validator_value}, got {got}"
    elif kind in _BOUNDS:
        yield (
            rank,
            path,
            False,
            (f"expected a number {_BOUNDS[kind]} {error.validator_value}, got {got}"),
        )
    elif kind in ("minItems", "maxItems"):
        side = "at least" if kind == "minItems" else "at most"
        n = error.validator_value
        yield rank, path, False, f"expected {side} {n} item{'s' if n != 1 else ''}"
    elif kind in ("minLength", "maxLength"):
        side = "at least" if kind == "minLength" else "at most"
        yield rank, path, False, f"expected {side} {error.validator_value} characters, got {got}"
    elif kind == "uniqueItems":
        yield rank, path, False, "items must be unique"
    elif kind == "not":
        yield rank, path, False, f"{got} is not allowed here"
    else:
        yield rank, path, False, error.message


def _types(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(t) for t in value]


@functools.lru_cache(maxsize=256)
def _pattern_meaning(pattern: str) -> str | None:
    """Plugins often spell durations and sizes as patterns: word their messages the same."""
    try:
        regex = re.compile(pattern)
    except re.error:
        return None
    if all(regex.search(s) for s in ("30s", "5m", "2h")) and not regex.search("soon"):
        return FORMAT_EXPECT["duration"]
    if all(regex.search(s) for s in ("3", "25%")) and not regex.search("quarter"):
        return FORMAT_EXPECT["size"]
    return None


def _hint(word: str, known: list[str]) -> str:
    close = get_close_matches(word, known, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    if known and len(known) <= 15:
        return f" (known keys: {', '.join(known)})"
    return ""
