"""JSON Schema errors turned into located problems in the project's words (docs/errors.md).

The whole document is validated at once (``iter_errors``) against the composed schema; every
error is mapped to the node that caused it: the unknown key itself, the map that misses a key,
the value of the wrong type. ``format: file`` values are collected here and checked against the
folder of the file that wrote them.
"""

from __future__ import annotations

import functools
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
from .fastcheck import surely_valid
from .formats import DURATION_WORDS, PROBLEMS, SIZE_WORDS, conforms, describe
from .nodes import LDict, PathPart, dotted, where
from .paths import conforming, file_problems
from .schema import build_schema

if TYPE_CHECKING:
    from ..plugins import Plugins

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

WARNING = 9  # the rank of a warning

_cache: tuple[weakref.ref[Any], Any] | None = None


def _file(value: object) -> bool:
    return not isinstance(value, str)  # every path is reported, then checked on disk


FORMATS: dict[str, Callable[[object], bool]] = {
    **{name: conforms(name) for name in PROBLEMS},
    "file": _file,
}


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


def format_checker() -> Any:
    """The SDK's formats (``formats``) for jsonschema, as validation checks them."""
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
    validator = cls(schema, format_checker=format_checker())
    _cache = (weakref.ref(plugins), validator)
    return validator


def schema_problems(
    root: LDict, plugins: Plugins, files: Sequence[str] = ()
) -> list[tuple[int, SpecProblem]]:
    """Every schema error in the document, located and ranked: for one node, lower is better.

    Ranks below 5 are about a value (several may hit the same node: keep the first); 5 is about
    a map's keys (unknown or missing), each worth its own message; ``WARNING`` is a warning
    (a file outside the spec's folder), not a problem. ``files`` are the spec's
    files: a path that exists next to every one of them needs no closer look.
    """
    ranked: list[tuple[int, SpecProblem]] = []
    validator = validator_for(plugins)
    _run.memo.clear()
    _run.fast.clear()
    _run.formats = {**FORMATS, "file": conforming(files)}
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
            problem, warning = file_problems(root, tuple(error.absolute_path), error.instance)
            if problem is not None:
                ranked.append((0, problem))
            if warning is not None:
                ranked.append((WARNING, warning))
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
        # A value of the right form but out of range ('manual' or a duration: '900d') is
        # told what is wrong with it; anything else what the alternatives are.
        specific = [
            message
            for e in direct
            if e.validator == "format"
            and (check := PROBLEMS.get(str(e.validator_value))) is not None
            and (message := check(instance)) is not None
            and not message.startswith((f"expected {DURATION_WORDS}", f"expected {SIZE_WORDS}"))
        ]
        if specific:
            yield 0, path, False, specific[0]
        elif schema.get("x-expect"):
            yield 3, path, False, f"expected {schema['x-expect']}, got {describe(instance)}"
        elif (
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
    problem = PROBLEMS.get(str(error.validator_value)) if kind == "format" else None
    if problem is not None and (message := problem(instance)) is not None:
        yield rank, path, False, message
        return
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
        n = error.validator_value
        chars = f"{n} character{'s' if n != 1 else ''}"
        yield rank, path, False, f"expected {side} {chars}, got {got}"
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
        return DURATION_WORDS
    if all(regex.search(s) for s in ("3", "25%")) and not regex.search("quarter"):
        return SIZE_WORDS
    return None


def _hint(word: str, known: list[str]) -> str:
    close = get_close_matches(word, known, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    if known and len(known) <= 15:
        return f" (known keys: {', '.join(known)})"
    return ""
