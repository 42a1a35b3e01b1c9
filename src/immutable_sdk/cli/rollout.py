"""Commands that plan, apply and inspect rollouts: plan, apply, status, history, rollback."""

from __future__ import annotations

import sys
from collections.abc import Sequence
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
@pass_options
def plan(
    opts: Options, files: tuple[str, ...], output: str | None, detailed_exitcode: bool
) -> None:
    """Show what apply would change, fleet by fleet, and why.

    A fleet whose desired release is quarantined (a rollout of it failed its gates) shows as
    ``blocked``; one that ``rollback`` pinned shows as ``pinned``. Neither is a change.
    """
    try:
        with open_engine(opts, files) as (engine, _):
            the_plan = engine.plan()
    except ImmutableSdkError as exc:
        if not detailed_exitcode or opts.debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if _fmt(opts, output) == "json":
        from .render import print_json

        print_json(the_plan.to_dict())
    else:
        from .render import plan_table

        _show(plan_table(the_plan))
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
    "--retry-failed",
    is_flag=True,
    help="Roll out releases that are quarantined because a rollout of them failed its gates "
    "or was aborted (plan shows those fleets as blocked).",
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
    retry_failed: bool,
    wait_for_lock: str,
    lease: str,
) -> None:
    """Build images and roll fleets out to the spec, with health gates and rollback.

    A fleet whose last rollout did not finish (its process died, was interrupted, or lost its
    lock) is resumed from what AWS runs, or rolled back with --abort-unfinished. A fleet that
    another rollout holds is skipped with exit code 3 (or waited for, --wait-for-lock). The
    first SIGINT or SIGTERM stops at the next safe point (exit 130, resumable); a second one
    exits at once.

    A release whose rollout failed its gates (or was aborted) is quarantined: its fleet is
    left alone and apply exits 1 until --retry-failed. A fleet that ``rollback`` pinned stays
    on its release until ``unpin`` or a new desired release.
    """
    from .interrupts import stop_on_signals
    from .render import plan_table, print_json, result_table

    as_json = _fmt(opts, output) == "json"
    lock_options = {
        "lease": _duration("--lease", lease, minimum=3.0),
        "lock_wait": _duration("--wait-for-lock", wait_for_lock),
    }
    with open_engine(opts, files, **lock_options) as (engine, printer):
        the_plan = engine.plan()
        if retry_failed:
            the_plan = the_plan.retrying()
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
@pass_options
def history(
    opts: Options, files: tuple[str, ...], output: str | None, fleet: str | None, limit: int
) -> None:
    """Releases and rollouts with their outcomes, newest first."""
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
@click.option(
    "--no-pin",
    is_flag=True,
    help="Do not pin the fleet: the next apply rolls out what the spec wants again.",
)
@pass_options
def rollback(
    opts: Options,
    files: tuple[str, ...],
    output: str | None,
    fleet: str,
    to: str | None,
    no_pin: bool,
) -> None:
    """Replace a fleet's instances with an earlier release, through its strategy.

    The fleet is then pinned to that release: ``plan`` shows it ``pinned`` and ``apply``
    leaves it there until ``unpin --fleet FLEET``, or until the spec wants a release other
    than the one rolled back from.
    """
    from .render import print_json

    with open_engine(opts, files) as (engine, printer), printer:
        result = engine.rollback(fleet, to, pin=not no_pin)
    if _fmt(opts, output) == "json":
        print_json(result.to_dict())
    else:
        click.echo(
            f"{result.fleet}: {result.outcome} ({result.from_release} -> {result.to_release})"
            + (f": {result.error}" if result.error else "")
        )
        if result.ok and result.from_release != result.to_release and not no_pin:
            click.echo(
                f"{result.fleet}: pinned to {result.to_release}; apply leaves it there until "
                f"immutable-sdk unpin --fleet {result.fleet} or a new desired release"
            )
    code = exit_code([result])
    if code:
        sys.exit(code)


@click.command()
@spec_files_option
@output_option
@click.option("--fleet", required=True, help="The pinned fleet (fleet@region: in that region).")
@pass_options
def unpin(opts: Options, files: tuple[str, ...], output: str | None, fleet: str) -> None:
    """Remove the pin that ``rollback`` put on FLEET: the next apply rolls out what the spec
    wants again. Exit code 2 when the fleet has no pin."""
    with open_engine(opts, files) as (engine, _):
        removed = engine.unpin(fleet)
    if not removed:
        raise UsageError(f"fleet {fleet!r} is not pinned")
    if _fmt(opts, output) == "json":
        from .render import print_json

        print_json({"fleet": fleet, "unpinned": removed})
    else:
        pin = removed[0]
        click.echo(
            f"{fleet}: unpinned from {pin['release']} (rolled back from "
            f"{pin.get('from_release') or '-'}); the next apply rolls out what the spec wants"
        )


def register(group: click.Group) -> None:
    for command in (plan, apply, status, history, rollback, unpin):
        group.add_command(command)
