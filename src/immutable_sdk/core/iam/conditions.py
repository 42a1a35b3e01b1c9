"""Condition blocks that several statements of the generated policies share."""

from __future__ import annotations

from ...plugin import TAG_PROJECT


def retag_guard(project: str) -> dict[str, dict[str, str]]:
    """Tagging with the project's tag, of a resource that has none yet or already has it: so
    a resource of another project cannot be re-tagged into this project's reach."""
    return {
        "StringEquals": {f"aws:RequestTag/{TAG_PROJECT}": project},
        "StringEqualsIfExists": {f"aws:ResourceTag/{TAG_PROJECT}": project},
    }
