"""Commands that plan, apply and inspect rollouts: plan, apply, status, history, rollback."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from ..errors import DETAILED_CHANGES, UsageError
from . import F, Options, output_option, pass_options, spec_files_option
from .common import emit_json, exit_code, open_engine, output_format
from .common import show as _show

if TYPE_CHECKING:
    from ..core.engine import Engine
    from ..core.planner import Plan
    from ..core.selection import Selection

__all__ = ["register"]


def fleets_option(f: F) -> F:
    """``--fleet PATTERN`` (repeatable, globs) on plan and apply: Terraform's ``-target``."""
    return click.option(
        "--fleet",
        "fleets",
        multiple=True,
        metavar="PATTERN",
        help="Only fleets matching this glob (repeatable; web, api-*, web@* for every region), "
        "with the fleets they depend on; dependants left out are named.",
    )(f)


def planned(engine: Engine, patterns: Sequence[str]) -> tuple[Plan, Selection | None]:
    """The engine's plan, narrowed to ``patterns`` (notes on stderr say what that did)."""
    the_plan = engine.plan()
    if not patterns:
        return the_plan, None
    from ..core.selection import select

    selection = select(engine.spec, the_plan, patterns)
    for note in selection.notes():
        click.echo(f"note: {note}", err=True)
    return selection.plan, selection


@click.command()
@spec_files_option
@output_option
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit as Terraform does: 0 when there is nothing to change, 2 when there are "
    "changes, 1 on any error (usage errors included).",
)
@fleets_option
@pass_options
def plan(
    opts: Options,
    files: tuple[str, ...],
    output: str | None,
    detailed_exitcode: bool,
    fleets: tuple[str, ...],
) -> None:
    """Show what apply would change, fleet by fleet, and why."""
    with open_engine(opts, files) as (engine, _):
        the_plan, selection = planned(engine, fleets)
    if output_format(opts, output) == "json":
        emit_json(
            {**the_plan.to_dict(), **({"selection": selection.to_dict()} if selection else {})}
        )
    else:
        from .render import plan_table

        _show(plan_table(the_plan))
    if detailed_exitcode and the_plan.changes:
        sys.exit(DETAILED_CHANGES)


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
@fleets_option
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
    fleets: tuple[str, ...],
) -> None:
    """Build images and roll fleets out to the spec, with health gates and rollback.

    A fleet whose last rollout did not finish (its process died, was interrupted, or lost its
    lock) is resumed from what AWS runs, or rolled back with --abort-unfinished. A fleet that
    another rollout holds is skipped with exit code 3 (or waited for, --wait-for-lock). The
    first SIGINT or SIGTERM stops at the next safe point (exit 130, resumable); a second one
    exits at once.
    """
    from .interrupts import stop_on_signals
    from .render import plan_table, result_table

    as_json = output_format(opts, output) == "json"
    lock_options = {
        "lease": _duration("--lease", lease, minimum=3.0),
        "lock_wait": _duration("--wait-for-lock", wait_for_lock),
    }
    with open_engine(opts, files, **lock_options) as (engine, printer):
        the_plan, selection = planned(engine, fleets)
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
                recycle=recycle and selection is None,
                parallelism=parallelism,
                fail_fast=fail_fast,
                abort_unfinished=abort_unfinished,
            )
            if recycle and selection is not None:  # only the selected fleets' instances
                from ..core.drift.remediate import fix_results

                keys = [i.key for i in the_plan.items if i.action != "destroy"]
                result.fleets += fix_results(engine.recycle(keys))
    if as_json:
        emit_json(result.to_dict())
    else:
        _show(result_table(result))
    code = exit_code(result.fleets)
    if code:
        sys.exit(code)


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
        from .watch import watch_status

        watch_status(opts, files, output_format(opts, output), interval)
        return
    with open_engine(opts, files) as (engine, _):
        entries = engine.status()
    if output_format(opts, output) == "json":
        emit_json({"fleets": entries})
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
        known = engine.unit_keys()
    if fleet and fleet not in known and not any(data[fleet].values()):
        # a fleet the spec no longer names still has its history; a typo has none
        raise UsageError(f"the spec has no fleet {fleet!r} (fleets: {', '.join(sorted(known))})")
    if output_format(opts, output) == "json":
        emit_json({"fleets": data})
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
    with open_engine(opts, files) as (engine, printer), printer:
        result = engine.rollback(fleet, to)
    if output_format(opts, output) == "json":
        emit_json(result.to_dict())
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
