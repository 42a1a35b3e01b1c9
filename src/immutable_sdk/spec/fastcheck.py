"""A fast, conservative answer to "is this value valid against this schema?".

jsonschema spends microseconds per node on bookkeeping; a spec with a thousand fleets has some
hundred thousand nodes. Most values are valid and their schemas simple, so the validator asks
``surely_valid`` first and descends with jsonschema only where it answers False. It answers True
only when certain: any keyword it does not know (``$ref``, ``oneOf``, ``if``...) or any doubt
gives False, and jsonschema then decides and words the errors.

A value that YAML aliases put in many places is one object: with a ``memo`` each (subschema,
value object) is judged once, so the cost follows the document's bytes, not its expansion.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

Formats = Mapping[str, Callable[[object], bool]]
Memo = dict[tuple[int, int], bool]


class _Ctx(NamedTuple):
    formats: Formats
    defs: Mapping[str, Any]
    memo: Memo


# Keywords that never make a value invalid here.
_ANNOTATIONS = frozenset(
    {
        "$comment",
        "$defs",
        "$id",
        "$schema",
        "default",
        "deprecated",
        "description",
        "examples",
        "readOnly",
        "title",
        "writeOnly",
        "x-expect",
    }
)


def surely_valid(
    schema: Any,
    value: Any,
    formats: Formats,
    defs: Mapping[str, Any],
    memo: Memo | None = None,
) -> bool:
    """True only if ``value`` is certainly valid against ``schema`` (False: ask jsonschema).

    ``memo``: answers kept by the identity of schema and value; the caller keeps both alive
    while it uses the memo (a document being validated).
    """
    return _valid(schema, value, _Ctx(formats, defs, {} if memo is None else memo))


def _valid(schema: Any, value: Any, c: _Ctx) -> bool:
    if schema is True:
        return True
    if not isinstance(schema, dict):
        return False
    shared = isinstance(value, (dict, list, str))  # scalars cost nothing to judge again
    if shared:
        key = (id(schema), id(value))
        known = c.memo.get(key)
        if known is not None:
            return known
    answer = True
    for keyword, arg in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        check = _CHECKS.get(keyword)
        if check is None or not check(arg, value, schema, c):
            answer = False
            break
    if shared:
        c.memo[key] = answer
    return answer


def _is_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if isinstance(value, bool):
        return kind == "boolean"
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float))
    return kind == "null" and value is None


def _same(a: Any, b: Any) -> bool:
    """JSON equality (``true`` is not ``1``), walking only ``a``: the schema's side, small."""
    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)) or a.keys() != b.keys():
            return False
        return all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) or isinstance(b, list):
        if not (isinstance(a, list) and isinstance(b, list)) or len(a) != len(b):
            return False
        return all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@functools.lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _unique(items: list[Any]) -> bool:
    if not all(isinstance(i, str) for i in items):
        return False  # equality of numbers and containers: let jsonschema judge
    return len(set(items)) == len(items)


def _properties(arg: Any, value: Any, s: Any, c: _Ctx) -> bool:
    if not isinstance(value, dict):
        return True
    return all(k not in value or _valid(sub, value[k], c) for k, sub in arg.items())


def _additional(arg: Any, value: Any, s: Any, c: _Ctx) -> bool:
    if not isinstance(value, dict):
        return True
    if "patternProperties" in s:
        return False
    known = s.get("properties", {})
    extra = [k for k in value if k not in known]
    return all(_valid(arg, value[k], c) for k in extra)


def _plugin(arg: Any, value: Any, s: Any, c: _Ctx) -> bool:
    name = value.get(arg["key"]) if isinstance(value, dict) else None
    ref = arg["schemas"].get(name) if isinstance(name, str) else None
    return ref is None or _valid(c.defs[ref.rsplit("/", 1)[1]], value, c)


def _one_of(arg: Any, value: Any, s: Any, c: _Ctx) -> bool:
    # Exactly one branch valid, and every other one ruled out by its type.
    valid = [b for b in arg if _valid(b, value, c)]
    if len(valid) != 1:
        return False
    return all(b is valid[0] or _wrong_type(b, value) for b in arg)


def _wrong_type(schema: Any, value: Any) -> bool:
    kinds = schema.get("type") if isinstance(schema, dict) else None
    if kinds is None:
        return False
    return not any(_is_type(value, t) for t in ([kinds] if isinstance(kinds, str) else kinds))


def _format(arg: Any, value: Any, s: Any, c: _Ctx) -> bool:
    check = c.formats.get(arg)
    return check is None or check(value)


_Check = Callable[[Any, Any, Any, _Ctx], bool]
_CHECKS: dict[str, _Check] = {
    "type": lambda a, v, s, c: any(_is_type(v, t) for t in ([a] if isinstance(a, str) else a)),
    "enum": lambda a, v, s, c: any(_same(e, v) for e in a),
    "const": lambda a, v, s, c: _same(a, v),
    "minimum": lambda a, v, s, c: not _number(v) or v >= a,
    "maximum": lambda a, v, s, c: not _number(v) or v <= a,
    "exclusiveMinimum": lambda a, v, s, c: not _number(v) or v > a,
    "exclusiveMaximum": lambda a, v, s, c: not _number(v) or v < a,
    "minLength": lambda a, v, s, c: not isinstance(v, str) or len(v) >= a,
    "maxLength": lambda a, v, s, c: not isinstance(v, str) or len(v) <= a,
    "pattern": lambda a, v, s, c: not isinstance(v, str) or bool(_regex(a).search(v)),
    "format": _format,
    "items": lambda a, v, s, c: not isinstance(v, list) or all(_valid(a, i, c) for i in v),
    "minItems": lambda a, v, s, c: not isinstance(v, list) or len(v) >= a,
    "maxItems": lambda a, v, s, c: not isinstance(v, list) or len(v) <= a,
    "uniqueItems": lambda a, v, s, c: not a or not isinstance(v, list) or _unique(v),
    "required": lambda a, v, s, c: not isinstance(v, dict) or all(k in v for k in a),
    "properties": _properties,
    "additionalProperties": _additional,
    "allOf": lambda a, v, s, c: all(_valid(sub, v, c) for sub in a),
    "anyOf": lambda a, v, s, c: any(_valid(sub, v, c) for sub in a),
    "oneOf": _one_of,
    "x-plugin": _plugin,
}
