"""Commands that plan, apply and inspect rollouts: plan, apply, status, history, rollback."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import ExitCode, ImmutableSdkError, UsageError
from . import Options, output_option, pass_options, spec_files_option
from .connect import open_engine

__all__ = ["exit_code", "open_engine", "register"]


def _fmt(opts: Options, output: str | None) -> str:
    return output or opts.output


def _show(obj: Any) -> None:
    from .render import console

    console(sys.stdout).print(obj)


@click.command()
@spec_files_option
@output_option
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to change, 2 when there are changes, 1 on error.",
)
@click.option(
    "--steps",
    is_flag=True,
    help="Also each changed fleet's steps with their waits, the peak extra instances and a "
    "minimum duration (spec waits plus the median launch-to-healthy of past rollouts).",
)
@pass_options
def plan(
    opts: Options,
    files: tuple[str, ...],
    output: str | None,
    detailed_exitcode: bool,
    steps: bool,
) -> None:
    """Show what apply would change, fleet by fleet, and why."""
    schedule = None
    try:
        with open_engine(opts, files) as (engine, _):
            the_plan = engine.plan()
            if steps:
                from ..core.preview.schedule import plan_schedule

                schedule = plan_schedule(engine, the_plan)
    except ImmutableSdkError as exc:
        if not detailed_exitcode or opts.debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if _fmt(opts, output) == "json":
        from .render import print_json

        data = the_plan.to_dict()
        if schedule is not None:
            data["schedule"] = schedule.to_dict()
        print_json(data)
    else:
        from .render import plan_table

        _show(plan_table(the_plan))
        if schedule is not None:
            from .preview import schedule_view

            _show(schedule_view(schedule))
    if detailed_exitcode and the_plan.changes:
        sys.exit(2)


@click.command()
@spec_files_option
@output_option
@click.option("--yes", "-y", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--prune", is_flag=True, help="Also destroy fleets that the spec no longer names.")
@click.option(
    "--recycle",
    is_flag=True,
    help="Then replace instances older than their fleet's max_lifetime (see recycle).",
)
@click.option(
    "--parallelism",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Fleets rolled out at once (depends_on and waves still order them).",
)
@click.option(
    "--fail-fast",
    is_flag=True,
    help="After the first failed fleet start no other (running ones finish).",
)
@click.option(
    "--abort-unfinished",
    is_flag=True,
    help="Roll back a fleet's unfinished rollout (its process died or was interrupted) to "
    "the release it started from, instead of resuming it.",
)
@click.option(
    "--wait-for-lock",
    default="0s",
    metavar="DURATION",
    help="Wait this long (e.g. 10m) for a fleet that another rollout has locked, instead of "
    "exiting with code 3.",
)
@click.option(
    "--lease",
    default="60s",
    show_default=True,
    envvar="IMMUTABLE_SDK_LOCK_LEASE",
    metavar="DURATION",
    help="Lease of the fleet locks this apply holds, renewed while it runs; once it expired "
    "another apply may take over an unfinished rollout (also IMMUTABLE_SDK_LOCK_LEASE).",
)
@click.option(
    "--virtual-clock",
    is_flag=True,
    help="Sandbox only: bakes, pauses, TTL and keep-previous waits pass in virtual time, so "
    "an example with hours of waits applies in seconds; health checks poll at least 30s "
    "apart (a manual pause still waits for promote, unless --auto-promote).",
)
@click.option(
    "--auto-promote",
    is_flag=True,
    help="Sandbox only: promote every manual pause at once, as an operator would.",
)
@pass_options
def apply(
    opts: Options,
    files: tuple[str, ...],
    output: str | None,
    yes: bool,
    prune: bool,
    recycle: bool,
    parallelism: int,
    fail_fast: bool,
    abort_unfinished: bool,
    wait_for_lock: str,
    lease: str,
    virtual_clock: bool,
    auto_promote: bool,
) -> None:
    """Build images and roll fleets out to the spec, with health gates and rollback.

    A fleet whose last rollout did not finish (its process died, was interrupted, or lost its
    lock) is resumed from what AWS runs, or rolled back with --abort-unfinished. A fleet that
    another rollout holds is skipped with exit code 3 (or waited for, --wait-for-lock). The
    first SIGINT or SIGTERM stops at the next safe point (exit 130, resumable); a second one
    exits at once.
    """
    from .interrupts import stop_on_signals
    from .render import plan_table, print_json, result_table

    as_json = _fmt(opts, output) == "json"
    lock_options = {
        "lease": _duration("--lease", lease, minimum=3.0),
        "lock_wait": _duration("--wait-for-lock", wait_for_lock),
    }
    engine_options: dict[str, Any] = dict(lock_options)
    for flag, given in (("--virtual-clock", virtual_clock), ("--auto-promote", auto_promote)):
        if given and not opts.sandbox:
            raise UsageError(
                f"{flag} is for the embedded sandbox only (--sandbox): on AWS, waits are real "
                "and pauses are an operator's"
            )
    if virtual_clock:
        from ..clock import PacedVirtualClock
        from ..core.preview.rehearse import polled

        engine_options["clock"] = PacedVirtualClock()
        engine_options["adjust"] = lambda spec: polled(spec, VIRTUAL_POLL)
    engines: list[Any] = []
    if auto_promote:
        engine_options["observe"] = _operator_stand_in(engines)
    with open_engine(opts, files, **engine_options) as (engine, printer):
        engines.append(engine)
        the_plan = engine.plan()
        if not as_json:
            _show(plan_table(the_plan))
        if the_plan.changes and not yes:
            if not sys.stdin.isatty():
                raise UsageError(
                    "apply needs confirmation and there is no terminal to ask on; pass --yes"
                )
            if not click.confirm("Apply these changes?", default=False):
                raise UsageError("apply cancelled")
        with printer, stop_on_signals(engine.stop):
            result = engine.apply(
                the_plan,
                prune=prune,
                recycle=recycle,
                parallelism=parallelism,
                fail_fast=fail_fast,
                abort_unfinished=abort_unfinished,
            )
    if as_json:
        print_json(result.to_dict())
    else:
        _show(result_table(result))
    code = exit_code(result.fleets)
    if code:
        sys.exit(code)


VIRTUAL_POLL = 30.0  # --virtual-clock: health checks poll at least this far apart


def _operator_stand_in(engines: list[Any]) -> Any:
    """An event observer that promotes every manual pause at once (``--auto-promote``)."""

    def observe(event: Any) -> None:
        if event.kind == "rollout.paused" and event.data.get("manual") and event.rollout:
            engine = engines[0]
            engine.state.send_signal(event.rollout, "promote", engine.clock.now())

    return observe


LOCK_OUTCOMES = ("locked", "lock_lost")


def exit_code(results: Sequence[Any]) -> int:
    """0 when every fleet is ok; 3 when the only trouble is a lock (another rollout holds
    the fleet, or took it over); 1 when anything failed."""
    bad = [r for r in results if not r.ok]
    if not bad:
        return int(ExitCode.OK)
    if all(r.outcome in LOCK_OUTCOMES for r in bad):
        return int(ExitCode.LOCKED)
    return int(ExitCode.FAILED)


def _duration(option: str, value: str, *, minimum: float = 0.0) -> float:
    from ..units import format_duration, parse_duration

    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if seconds < minimum:
        raise UsageError(f"{option}: at least {format_duration(minimum)}, got {value!r}")
    return seconds


@click.command()
@spec_files_option
@output_option
@click.option(
    "--watch",
    is_flag=True,
    help="Refresh until interrupted: rollout step, weights and healthy instances per slot.",
)
@click.option("--interval", default=2.0, show_default=True, help="Seconds between refreshes.")
@pass_options
def status(
    opts: Options, files: tuple[str, ...], output: str | None, watch: bool, interval: float
) -> None:
    """Per fleet: release, instances by release and health, rollout in progress."""
    if watch:
        from .operator import watch_status

        watch_status(opts, files, _fmt(opts, output), interval)
        return
    with open_engine(opts, files) as (engine, _):
        entries = engine.status()
    if _fmt(opts, output) == "json":
        from .render import print_json

        print_json(entries)
    else:
        from .render import status_table

        _show(status_table(entries))


@click.command()
@spec_files_option
@output_option
@click.option("--fleet", default=None, help="Only this fleet (fleet@region: in that region).")
@click.option("--limit", default=20, show_default=True, help="Newest entries per fleet.")
@click.option(
    "--rollout",
    default=None,
    metavar="ID",
    help="One rollout of --fleet: its steps, gate results and canary numbers.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report of the rollout (--rollout, default the fleet's newest) to this "
    "file: .html (self-contained, charts) or .md (Markdown with Mermaid).",
)
@pass_options
def history(
    opts: Options,
    files: tuple[str, ...],
    output: str | None,
    fleet: str | None,
    limit: int,
    rollout: str | None,
    report: Path | None,
) -> None:
    """Releases and rollouts with their outcomes, newest first.

    With --rollout (or --report) one rollout of --fleet: its steps with their gate results,
    the traffic weights, capacity and canary analyses its journal recorded.
    """
    if rollout or report:
        from . import reports

        if not fleet:
            raise UsageError("history --rollout and --report need --fleet (the rollout's fleet)")
        if report is not None:
            from ..report import format_of

            format_of(report)  # a wrong file name fails before anything is opened
        with open_engine(opts, files) as (engine, _):
            the_report = reports.rollout_report(engine, fleet, rollout)
        if report is not None:
            reports.write(the_report, report)
        elif _fmt(opts, output) == "json":
            from .render import print_json

            print_json(the_report.to_dict())
        else:
            _show(reports.steps_table(the_report))
        return
    with open_engine(opts, files) as (engine, _):
        data = engine.history(fleet, limit=limit)
    if _fmt(opts, output) == "json":
        from .render import print_json

        print_json(data)
    else:
        from .render import history_table

        _show(history_table(data))


@click.command()
@spec_files_option
@output_option
@click.option(
    "--fleet", required=True, help="The fleet to roll back (fleet@region: in that region)."
)
@click.option("--to", "to", default=None, help="Release id (default: the previous release).")
@pass_options
def rollback(
    opts: Options, files: tuple[str, ...], output: str | None, fleet: str, to: str | None
) -> None:
    """Replace a fleet's instances with an earlier release, through its strategy."""
    from .render import print_json

    with open_engine(opts, files) as (engine, printer), printer:
        result = engine.rollback(fleet, to)
    if _fmt(opts, output) == "json":
        print_json(result.to_dict())
    else:
        click.echo(
            f"{result.fleet}: {result.outcome} ({result.from_release} -> {result.to_release})"
            + (f": {result.error}" if result.error else "")
        )
    code = exit_code([result])
    if code:
        sys.exit(code)


def register(group: click.Group) -> None:
    for command in (plan, apply, status, history, rollback):
        group.add_command(command)
