"""The ``format`` values spec schemas (the core's and plugins') may use, and their messages.

``duration`` (0 or more: ``0s``, ``30s``, ``1h30m``), ``positive-duration`` (more than 0, for
timeouts and intervals), ``size`` (a count, or a percentage from 0% to 100%), ``positive-size``
(at least 1, or above 0%), ``region`` (a region of any AWS partition, as botocore knows them),
``instance-type`` (an EC2 instance type botocore knows), ``regex`` (a Python regular
expression that compiles) and ``file`` (a path next to the spec
file; checked on disk by ``validate``). Each check returns the words that follow the path in a
message, or None when the value is good.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from difflib import get_close_matches
from typing import Any

from ..units import format_duration, parse_duration, parse_size
from .schema import REGION_PATTERN as REGION_SHAPE

MAX_DURATION = 365 * 86400.0
"""Durations in a spec are at most a year: more is a typo, and would overflow date arithmetic."""

DURATION_WORDS = "a duration like '30s', '5m', '2h' or '1h30m'"
SIZE_WORDS = "a count or a percentage like '25%'"


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
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def duration_problem(value: Any, *, positive: bool = False) -> str | None:
    """What is wrong with ``value`` as a spec duration (None: nothing)."""
    try:
        seconds = parse_duration(value)
    except ValueError:
        if isinstance(value, float) and not math.isfinite(value):
            return f"expected a finite duration ({DURATION_WORDS}), got {describe(value)}"
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            return f"expected a duration of 0s or more, got {describe(value)}"
        return f"expected {DURATION_WORDS}, got {describe(value)}"
    if positive and seconds <= 0:
        return f"expected a duration longer than 0s, got {describe(value)}"
    if seconds > MAX_DURATION:
        return (
            f"expected a duration of at most {format_duration(MAX_DURATION)}, got {describe(value)}"
        )
    return None


def size_problem(value: Any, *, positive: bool = False) -> str | None:
    """What is wrong with ``value`` as a size: a count, or a percentage from 0% to 100%."""
    if isinstance(value, float) or (
        isinstance(value, int) and not isinstance(value, bool) and value < 0
    ):
        least = "1" if positive else "0"
        return (
            f"expected a whole count of {least} or more, or a percentage like '25%', "
            f"got {describe(value)}"
        )
    try:
        size = parse_size(value)
    except ValueError:
        return f"expected {SIZE_WORDS}, got {describe(value)}"
    if size.percent and size.value > 100:
        return f"expected a percentage from 0% to 100%, got {describe(value)}"
    if positive and size.value == 0:
        return f"expected at least 1 (or a percentage above 0%), got {describe(value)}"
    return None


def region_problem(value: Any) -> str | None:
    """What is wrong with ``value`` as an AWS region (any partition's)."""
    from .catalog import known_regions

    if not isinstance(value, str):
        return None  # the type's problem
    if not re.match(REGION_SHAPE, value):
        return f"expected an AWS region like 'us-east-1', got {describe(value)}"
    known = known_regions()
    if not known or value in known:
        return None
    close = get_close_matches(value, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"unknown AWS region {value!r}{hint} (no partition of the installed botocore has it; "
        "a region newer than botocore needs a newer botocore)"
    )


def instance_type_problem(value: Any) -> str | None:
    """What is wrong with ``value`` as an EC2 instance type."""
    from .catalog import known_instance_types

    if not isinstance(value, str):
        return None  # the type's problem
    known = known_instance_types()
    if not known or value in known:
        return None
    close = get_close_matches(value, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"unknown EC2 instance type {value!r}{hint} (the installed botocore does not know it; "
        "a type newer than botocore needs a newer botocore)"
    )


@functools.lru_cache(maxsize=256)
def regex_problem(value: str) -> str | None:
    """What is wrong with ``value`` as a Python regular expression."""
    try:
        re.compile(value)
    except re.error as exc:
        return f"expected a regular expression, got {describe(value)}: {exc}"
    except (RecursionError, OverflowError) as exc:
        return f"expected a regular expression, got {describe(value)}: {exc}"
    return None


def _regex(value: Any) -> str | None:
    return regex_problem(value) if isinstance(value, str) else None


PROBLEMS: dict[str, Callable[[Any], str | None]] = {
    "duration": duration_problem,
    "positive-duration": functools.partial(duration_problem, positive=True),
    "size": size_problem,
    "positive-size": functools.partial(size_problem, positive=True),
    "region": region_problem,
    "instance-type": instance_type_problem,
    "regex": _regex,
}
"""Format name -> the message of a value that does not conform (``file`` is checked apart)."""


def conforms(name: str) -> Callable[[object], bool]:
    """The boolean check of a format, for jsonschema's FormatChecker and the fast check."""
    problem = PROBLEMS[name]
    return lambda value: problem(value) is None
