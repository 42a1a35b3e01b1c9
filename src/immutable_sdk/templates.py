"""Text templates in specs (an ``http`` check's URL, a metric's dimension values): only the
named placeholders, each exactly as named.

Templates are filled with ``str.format_map``: ``{name.attr}``, ``{name[0]}``, ``{name!r}`` and
``{name:>9}`` would reach into the values or reshape them, so they are refused like unknown
names. ``{{`` and ``}}`` write braces.
"""

from __future__ import annotations

import string
from collections.abc import Sequence


def placeholder_problems(template: str, allowed: Sequence[str]) -> list[str]:
    """What is wrong with the placeholders of ``template`` (empty: nothing)."""
    known = ", ".join("{" + p + "}" for p in allowed)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [
            f"{exc} in {template!r}; placeholders are {known}, and '{{{{' and '}}}}' write braces"
        ]
    problems = []
    for _, field, spec, conversion in parts:
        if field is None or (field in allowed and not spec and not conversion):
            continue
        written = (
            "{"
            + field
            + (f"!{conversion}" if conversion else "")
            + (f":{spec}" if spec else "")
            + "}"
        )
        if field.split(".")[0].split("[")[0] in allowed:
            problems.append(
                f"placeholder {written} may not have attributes, indexes, conversions or "
                f"formats; use {known} as they are"
            )
        else:
            problems.append(f"unknown placeholder {written}; use {known}")
    return problems
