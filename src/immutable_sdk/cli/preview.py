"""``rehearse``: a spec's rollout on the embedded emulator under a virtual clock, in seconds."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import ExitCode, UsageError
from . import Duration, Options, output_option, pass_options, spec_files_option

if TYPE_CHECKING:
    from ..core.preview.rehearse import Rehearsal
    from ..core.preview.schedule import PlanSchedule


def _rate(option: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"{option}: a fraction of the requests from 0 to 1, got {value:g}")
    return value


@click.command()
@spec_files_option
@output_option
@click.option(
    "--boot",
    type=Duration(),
    default="60s",
    show_default=True,
    help="Simulated time from launch until an instance is up.",
)
@click.option(
    "--warmup",
    type=Duration(),
    default="30s",
    show_default=True,
    help="Simulated time after boot until it passes its health checks.",
)
@click.option(
    "--requests-per-second",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    help="Simulated traffic that canary analyses judge.",
)
@click.option(
    "--error-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Fraction of the previous release's requests that fail (5xx).",
)
@click.option(
    "--canary-error-rate",
    type=float,
    default=None,
    help="Fraction of the new release's requests that fail (default: --error-rate).",
)
@click.option(
    "--poll",
    type=Duration(),
    default="30s",
    show_default=True,
    help="Poll health checks at least this far apart (each poll is real work for the "
    "emulator; gates may end up to this much later); 0s: each fleet's own interval.",
)
@click.option(
    "--timeout",
    type=Duration(),
    default="5m",
    show_default=True,
    help="Wall-clock time the rehearsal may take.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the rehearsed rollout's report: .html or .md (one file per fleet "
    "and region when there are several: NAME.UNIT.html).",
)
@pass_options
def rehearse(
    opts: Options,
    files: tuple[str, ...],
    output: str | None,
    boot: float,
    warmup: float,
    requests_per_second: float,
    error_rate: float,
    canary_error_rate: float | None,
    poll: float,
    timeout: float,
    report: Path | None,
) -> None:
    """Run the spec's rollout on the embedded emulator under a virtual clock.

    Each fleet is created at a stand-in previous release, then rolled to the spec's release
    through its strategy, bakes, pauses, analyses, waves and regions included, with simulated
    boot and warm-up times and simulated traffic. Prints the timeline and the duration, and
    what makes the spec unable to work: exit 0 when nothing, 1 when anything was found
    (invalid specs, dependency cycles and wave deadlocks are refused by validation: exit 2).
    Nothing leaves 127.0.0.1; manual pauses are promoted at once.
    """
    from ..aws.loopback import guard
    from ..core.preview.rehearse import Options as RehearsalOptions
    from ..core.preview.rehearse import rehearse as run
    from ..core.preview.traffic import Load
    from ..core.preview.warmup import WarmUp
    from ..plugins import load_plugins
    from ..spec.load import load_spec

    if report is not None:
        from ..report import format_of

        format_of(report)
    guard()  # a rehearsal reaches nothing but its own emulator on loopback
    options = RehearsalOptions(
        boot=boot,
        warmup=warmup,
        load=Load(
            requests_per_second=requests_per_second,
            error_rate=_rate("--error-rate", error_rate),
            canary_error_rate=_rate(
                "--canary-error-rate",
                error_rate if canary_error_rate is None else canary_error_rate,
            ),
        ),
        timeout=timeout,
        poll=poll,
    )
    warm = WarmUp(options.boot, options.warmup)
    plugins = load_plugins([warm])
    spec = load_spec(files, plugins=plugins)
    rehearsal = run(spec, plugins, warm, options)
    try:
        if report is not None:
            _write_reports(rehearsal, report, spec.region)
        if (output or opts.output) == "json":
            click.echo(json.dumps(rehearsal.to_dict(), indent=2, sort_keys=True))
        else:
            _print(rehearsal)
    finally:
        rehearsal.close()
    if not rehearsal.ok:
        sys.exit(int(ExitCode.FAILED))


def _write_reports(rehearsal: Rehearsal, path: Path, region: str) -> None:
    from ..report import load_report, write_report

    units = [u for u in rehearsal.units if u.rollout]
    state = rehearsal.state()
    try:
        for unit in units:
            target = path
            if len(units) > 1:
                name = unit.key.replace("@", "-")
                target = path.with_name(f"{path.stem}.{name}{path.suffix}")
            report = load_report(state, unit.key, unit.rollout, home_region=region)
            write_report(report, target)
            click.echo(f"wrote the report of {unit.key} to {target}", err=True)
    finally:
        state.close()


def _print(rehearsal: Rehearsal) -> None:
    from ..report import load_report
    from ..report.svg import short_duration

    echo = click.echo
    echo(f"rehearsal of {rehearsal.project} on the embedded emulator, virtual clock")
    echo(
        f"setup: every fleet created at a stand-in previous release "
        f"({short_duration(rehearsal.setup_duration)} virtual)"
    )
    state = rehearsal.state()
    try:
        for unit in rehearsal.units:
            line = f"{unit.key}: {unit.outcome}"
            if unit.rollout:
                line += f" in {short_duration(unit.duration)} (rollout {unit.rollout})"
            echo(line + (f": {unit.error}" if unit.error else ""))
            if not unit.rollout:
                continue
            report = load_report(state, unit.key, unit.rollout)
            for s in report.steps:
                at = short_duration(s.start) if s.start is not None else "-"
                took = (
                    short_duration(s.end - s.start)
                    if s.start is not None and s.end is not None
                    else ""
                )
                text = ("rollback: " if s.rollback else "") + s.text
                detail = f"  {s.detail}" if s.detail else ""
                echo(f"  {s.label:>3}  {at:>7}  {took:>7}  {text}  [{s.status}]{detail}")
    finally:
        state.close()
    echo(
        f"rehearsed apply: {short_duration(rehearsal.duration)} of virtual time, "
        f"{rehearsal.wall:.1f}s of wall time"
    )
    if rehearsal.ok:
        echo("findings: none")
    else:
        echo(f"findings: {len(rehearsal.findings)}")
        for finding in rehearsal.findings:
            echo(f"  - {finding}")


def schedule_view(schedule: PlanSchedule) -> Any:
    """``plan --steps``: each changed fleet's steps and waits, its peak and minimum duration."""
    from rich.console import Group
    from rich.table import Table

    from ..report.svg import short_duration

    parts: list[Any] = []
    for fleet in schedule.fleets:
        table = Table(title=f"{fleet.unit}: {fleet.action} ({fleet.strategy})")
        for column in ("#", "step", "waits at least", "for"):
            table.add_column(column)
        for step in fleet.steps:
            wait = short_duration(step.wait) if step.wait else ""
            if step.operator:
                wait = "an operator"
            elif step.launches and not step.wait:
                wait = "launch-to-healthy"
            table.add_row(str(step.index + 1), step.text, wait, step.why)
        parts.append(table)
        if fleet.error:
            parts.append(f"  cannot plan its steps: {fleet.error}")
            continue
        slots = any(s.kind == "provision" for s in fleet.steps)
        kind = "" if not fleet.peak_extra else " (a second slot)" if slots else " (surge)"
        known = (
            f"median launch-to-healthy {short_duration(fleet.launch_to_healthy)} "
            f"over {fleet.samples} past launch(es)"
            if fleet.launch_to_healthy is not None
            else "launch-to-healthy unknown"
        )
        parts.append(
            f"  peak: {fleet.peak_instances} instance(s) at once, {fleet.peak_extra} above "
            f"desired {fleet.desired}{kind}\n"
            f"  minimum duration: {short_duration(fleet.minimum)} (spec waits "
            f"{short_duration(fleet.spec_waits)}; {known})"
        )
        parts += [f"  note: {note}" for note in fleet.notes]
    if schedule.fleets:
        waves = ", ".join(
            f"{w['name']} {short_duration(float(w['minimum']))}" for w in schedule.waves
        )
        parts.append(
            f"apply: at least {short_duration(schedule.minimum)}"
            + (f" (waves: {waves})" if len(schedule.waves) > 1 else "")
        )
    else:
        parts.append("no fleet to roll out: nothing to schedule")
    return Group(*parts)


def register(group: click.Group) -> None:
    group.add_command(rehearse)
