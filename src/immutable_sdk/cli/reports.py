"""``history --rollout ID`` and ``history --report FILE``: one rollout, in words or pictures.

The report is drawn from the state store's journal only (see ``immutable_sdk.report``); the
spec is read to name the fleet's unit keys, its region and the waves of the apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import UsageError

if TYPE_CHECKING:
    from ..core.engine import Engine
    from ..report import RolloutReport


def waves_of(engine: Engine) -> Any:
    """unit keys -> wave names, as the spec's waves assign them."""
    from ..core.waves import assign_waves

    spec = engine.spec

    def assign(keys: Sequence[str]) -> Mapping[str, str]:
        pairs = []
        for key in dict.fromkeys(keys):
            fleet, _, region = key.partition("@")
            pairs.append((fleet, region or spec.region))
        if not spec.waves:
            return {}
        return {u.key: w.name for w in assign_waves(spec, pairs) for u in w.units}

    return assign


def rollout_report(engine: Engine, fleet: str | None, rollout: str | None) -> RolloutReport:
    from ..report import load_report

    if not fleet:
        raise UsageError("history --rollout and --report need --fleet (the rollout's fleet)")
    if fleet not in engine.unit_keys():
        known = ", ".join(engine.unit_keys())
        raise UsageError(f"the spec has no fleet {fleet!r} (fleets: {known})")
    return load_report(
        engine.state, fleet, rollout, waves=waves_of(engine), home_region=engine.spec.region
    )


def write(report: RolloutReport, path: Path) -> None:
    from ..report import write_report

    fmt = write_report(report, path)
    click.echo(f"wrote the {fmt} report of rollout {report.rollout} to {path}", err=True)


def steps_table(report: RolloutReport) -> Any:
    """The rollout's steps with their results, for the terminal."""
    from rich.console import Group
    from rich.table import Table

    from ..report.svg import short_duration

    head = Table(title=f"rollout {report.rollout} of {report.fleet}", show_header=False)
    head.add_row("outcome", report.outcome or f"running ({report.phase})")
    head.add_row("releases", f"{report.from_release or '-'} -> {report.to_release}")
    if report.error:
        head.add_row("error", report.error)
    table = Table(title="steps")
    for column in ("#", "step", "at", "took", "result", "detail"):
        table.add_column(column)
    for s in report.steps:
        took = short_duration(s.end - s.start) if s.end is not None and s.start is not None else ""
        table.add_row(
            s.label,
            ("rollback: " if s.rollback else "") + s.text,
            short_duration(s.start) if s.start is not None else "-",
            took,
            s.status,
            s.detail,
        )
    parts: list[Any] = [head, table]
    for a in report.analyses:
        metrics = Table(title=f"analysis (step {a.step + 1}): {a.verdict}")
        for column in ("metric", "canary", "baseline", "verdict", "why"):
            metrics.add_column(column)
        for m in a.metrics:
            last = m.points[-1] if m.points else None
            metrics.add_row(
                m.name,
                "-" if last is None or last.canary is None else f"{last.canary:.6g}",
                "-" if last is None or last.baseline is None else f"{last.baseline:.6g}",
                m.verdict,
                m.reason,
            )
        parts.append(metrics)
    return Group(*parts)
