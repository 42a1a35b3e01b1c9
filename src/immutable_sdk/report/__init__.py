"""Rollout reports: what a rollout did, drawn from its journal (HTML with SVG, or Markdown).

    report = load_report(state, "web")            # the fleet's newest rollout
    write_report(report, Path("rollout.html"))    # or rollout.md (Mermaid, for CI summaries)

``model`` builds a ``RolloutReport`` from the journal; ``charts`` and ``svg`` draw it; ``html``
and ``markdown`` lay it out. Nothing here reads AWS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..errors import UsageError
from ..state.base import RolloutRecord, StateStore
from .model import RolloutReport

__all__ = ["RolloutReport", "apply_siblings", "load_report", "render", "write_report"]

FORMATS = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown"}
SIBLING_LIMIT = 500  # rollouts looked at to find the others of one apply


def apply_siblings(state: StateStore, record: RolloutRecord) -> list[RolloutRecord]:
    """The other rollouts of the apply ``record`` was part of: the same owner (one engine,
    one process) and overlapping in time."""
    if not record.owner:
        return []
    end = record.finished_at if record.finished_at is not None else float("inf")
    out = []
    for other in state.rollouts(None, limit=SIBLING_LIMIT):
        if other.id == record.id or other.owner != record.owner:
            continue
        other_end = other.finished_at if other.finished_at is not None else float("inf")
        # one apply: the other rollout ran within a day of this one
        if other.started_at <= end + 86400 and other_end >= record.started_at - 86400:
            out.append(other)
    return out


def load_report(
    state: StateStore,
    fleet: str,
    rollout: str | None = None,
    *,
    waves: Callable[[Sequence[str]], Mapping[str, str]] | None = None,
    home_region: str | None = None,
) -> RolloutReport:
    """The report of ``rollout`` (default: ``fleet``'s newest rollout). ``waves`` maps the
    apply's unit keys to wave names; UsageError when there is no such rollout."""
    if rollout:
        record = state.get_rollout(rollout)
        if record is None or record.fleet != fleet:
            known = ", ".join(r.id for r in state.rollouts(fleet, limit=5)) or "none"
            raise UsageError(
                f"fleet {fleet!r} has no rollout {rollout!r} (its newest: {known}); "
                "see immutable-sdk history"
            )
    else:
        newest = state.rollouts(fleet, limit=1)
        if not newest:
            raise UsageError(f"fleet {fleet!r} has no rollout yet: nothing to report")
        record = newest[0]
    siblings = apply_siblings(state, record)
    keys = [record.fleet, *(s.fleet for s in siblings)]
    return RolloutReport.build(
        state.project,
        record,
        state.journal(record.id),
        siblings,
        waves(keys) if waves else {},
        home_region,
    )


def render(report: RolloutReport, fmt: str) -> str:
    if fmt == "markdown":
        from .markdown import render as markdown

        return markdown(report)
    from .html import render as html

    return html(report)


def format_of(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"--report {path}: the file name must end in .html or .md "
            "(HTML with SVG charts, or Markdown with Mermaid)"
        )
    return fmt


def write_report(report: RolloutReport, path: Path) -> str:
    """Write the report in the format the file name says; returns the format."""
    fmt = format_of(path)
    text = render(report, fmt)
    try:
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--report {path}: cannot write it: {exc.strerror or exc}") from None
    return fmt
