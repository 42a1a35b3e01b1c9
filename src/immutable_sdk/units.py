"""Durations (``30s``, ``5m``, ``2h``, ``7d``, ``1h30m``) and sizes (``3``, ``25%``).

``parse_duration`` is the one duration parser: the spec's schema (``format: duration``), the
strategies, health checks and the CLI's options all read durations through it.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from decimal import Decimal

_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")
_PARTS = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)\s*)+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_EXPECTED = "expected a duration like '30s', '5m', '2h' or '1h30m'"
_SIZE = re.compile(r"^\s*(\d+)\s*(%?)\s*$")


def parse_duration(value: object) -> float:
    """Seconds in a duration: a number of seconds, or a string such as ``90s``, ``5m``, ``1.5h``,
    or several parts from the largest unit down, as Go, Terraform and Kubernetes write them:
    ``1h30m``, ``90m30s``, ``1d12h``, ``2m500ms``. Units: d, h, m, s, ms.

    Raises ValueError with the accepted forms on anything else (negative, infinite or NaN
    numbers, a unit twice or out of order such as ``30m1h``).
    """
    if isinstance(value, bool):
        raise ValueError(f"{_EXPECTED}, got {value!r}")
    if isinstance(value, (int, float)) and value >= 0 and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        m = _SECONDS.match(value)
        if m:
            return float(m.group(1))
        if _PARTS.match(value):
            parts = _PART.findall(value)
            factors = [_FACTORS[unit] for _, unit in parts]
            if all(a > b for a, b in itertools.pairwise(factors)):
                return sum(float(n) * f for (n, _), f in zip(parts, factors, strict=True))
    raise ValueError(f"{_EXPECTED}, got {value!r}")


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration: 90 -> '90s', 300 -> '5m', 7200 -> '2h'."""
    for unit in ("d", "h", "m"):
        factor = _FACTORS[unit]
        if seconds >= factor and seconds % factor == 0:
            return f"{int(seconds // factor)}{unit}"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    # the shortest decimal that reads back as the same float, without an exponent
    return f"{Decimal(repr(float(seconds))):f}s"


@dataclass(frozen=True)
class Size:
    """A count or a percentage of some total."""

    value: int
    percent: bool = False

    def of(self, total: int, *, minimum: int = 0, round_up: bool = True) -> int:
        """The count this size means out of ``total`` (percentages round up by default)."""
        if not self.percent:
            n = self.value
        else:
            exact = total * self.value / 100
            n = math.ceil(exact - 1e-9) if round_up else math.floor(exact + 1e-9)
        return max(minimum, n)

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


def parse_size(value: object) -> Size:
    """A size: a non-negative whole number, or a percentage string like ``25%``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a count or a percentage like '25%', got {value!r}")
    if isinstance(value, int) and value >= 0:
        return Size(value)
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return Size(int(m.group(1)), bool(m.group(2)))
    raise ValueError(f"expected a count or a percentage like '25%', got {value!r}")
