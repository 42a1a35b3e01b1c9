"""Commands that plan, apply and inspect rollouts: plan, apply, status, history, rollback, unpin."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import DETAILED_CHANGES, UsageError
from . import Duration, F, Options, lease_option, output_option, pass_options, spec_files_option
from .common import emit_json, exit_code, open_engine, output_format
from .common import show as _show
from .execution import on_option

if TYPE_CHECKING:
    from ..core.engine import Engine
    from ..core.selection import Selection
    from ..results import Plan

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
@click.option(
    "--out",
    "-out",
    "out",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Save the plan to this file; `apply FILE` applies it, or refuses when the spec or "
    "AWS changed since.",
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
    fleets: tuple[str, ...],
    out: str | None,
) -> None:
    """Show what apply would change, fleet by fleet, and why.

    A fleet whose desired release is quarantined (a rollout of it failed its gates) shows as
    ``blocked``; one that ``rollback`` pinned shows as ``pinned``. Neither is a change.

    With --out FILE the plan is saved: `apply FILE` then applies exactly it, without asking,
    and refuses (exit 2, saying what changed) when a fleet's spec or what AWS runs changed
    since. With --steps, each changed fleet's steps, waits and minimum duration too.
    """
    schedule = None
    with open_engine(opts, files) as (engine, _):
        the_plan, selection = planned(engine, fleets)
        if out:
            from ..core.planfile import save

            save(out, engine.spec, the_plan, files, fleets)
        if steps:
            from ..core.preview.schedule import plan_schedule

            schedule = plan_schedule(engine, the_plan)
    if out and output_format(opts, output) != "json":
        click.echo(f"saved the plan to {out}; apply it with: immutable-sdk apply {out}", err=True)
    if output_format(opts, output) == "json":
        extra: dict[str, Any] = {"selection": selection.to_dict()} if selection else {}
        if out:
            extra["saved_to"] = out
        if schedule is not None:
            extra["schedule"] = schedule.to_dict()
        emit_json({**the_plan.to_dict(), **extra})
    else:
        from .render import plan_table

        _show(plan_table(the_plan))
        if schedule is not None:
            from .preview import schedule_view

            _show(schedule_view(schedule))
    if detailed_exitcode and the_plan.changes:
        sys.exit(DETAILED_CHANGES)


@click.command()
@click.argument("plan_file", metavar="[PLANFILE]", required=False, default=None)
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="Spec file; repeat to overlay (later files win). Not with PLANFILE: a saved plan "
    "names its spec files.",
)
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
    type=Duration(),
    default="0s",
    help="Wait this long (e.g. 10m) for a fleet that another rollout has locked, instead of "
    "exiting with code 3.",
)
@lease_option(
    "Lease of the fleet locks this apply holds, renewed while it runs; once it expired "
    "another apply may take over an unfinished rollout (also IMMUTABLE_SDK_LOCK_LEASE).",
)
@click.option(
    "--virtual-clock",
    is_flag=True,
    help="Sandbox only: bakes, pauses, TTL and keep-previous waits pass in virtual time, so "
    "an example with hours of waits applies at once; health checks poll at least 30s "
    "apart (a manual pause still waits for promote, unless --auto-promote).",
)
@click.option(
    "--auto-promote",
    is_flag=True,
    help="Sandbox only: promote every manual pause at once, as an operator would.",
)
@on_option
@fleets_option
@pass_options
def apply(
    opts: Options,
    plan_file: str | None,
    files: tuple[str, ...],
    output: str | None,
    yes: bool,
    prune: bool,
    recycle: bool,
    parallelism: int,
    fail_fast: bool,
    abort_unfinished: bool,
    retry_failed: bool,
    wait_for_lock: float,
    lease: float,
    virtual_clock: bool,
    auto_promote: bool,
    on: str,
    fleets: tuple[str, ...],
) -> None:
    """Build images and roll fleets out to the spec, with health gates and rollback.

    `--on step-functions` starts the plan's execution of the project's state machine
    (`orchestrator install`) and exits at once; workers run it (`worker`).

    `apply PLANFILE` applies a plan saved by `plan --out PLANFILE` (its spec files and
    fleets), without asking; it refuses when a fleet's spec or what AWS runs changed since.

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
    from .render import plan_table, result_table

    saved = None
    if plan_file is not None:
        from ..core.planfile import load

        if files or fleets:
            raise UsageError(
                f"apply {plan_file}: a saved plan names its spec files and fleets; "
                "drop -f and --fleet"
            )
        saved = load(plan_file)
        files, fleets, yes = saved.files, saved.fleets, True  # reviewed when it was made
    elif not files:
        raise UsageError("apply: give the spec with -f SPEC, or a saved plan: apply PLANFILE")
    if on == "step-functions":
        from .execution import apply_on_step_functions

        if saved is not None or prune or recycle or virtual_clock or auto_promote:
            raise UsageError(
                "apply --on step-functions takes -f SPEC, --fleet, --parallelism and --yes "
                "only (no saved plan, --prune, --recycle, --virtual-clock, --auto-promote)"
            )
        apply_on_step_functions(
            opts, files, fleets, yes=yes, output=output, parallelism=parallelism, planned=planned
        )
        return
    as_json = output_format(opts, output) == "json"
    engine_options: dict[str, Any] = {"lease": lease, "lock_wait": wait_for_lock}
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
        the_plan, selection = planned(engine, fleets)
        if saved is not None:
            from ..core.planfile import StalePlan

            changed = saved.changes(engine.spec, the_plan)
            if changed:
                raise StalePlan(
                    f"the saved plan {plan_file} is stale, nothing applied: "
                    + "; ".join(changed)
                    + "; make a new plan"
                )
        if retry_failed:
            from ..core.rollout.holds import retrying_plan

            the_plan = retrying_plan(the_plan)
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


VIRTUAL_POLL = 30.0  # --virtual-clock: health checks poll at least this far apart


def _operator_stand_in(engines: list[Any]) -> Any:
    """An event observer that promotes every manual pause at once (``--auto-promote``)."""

    def observe(event: Any) -> None:
        if event.kind == "rollout.paused" and event.data.get("manual") and event.rollout:
            engine = engines[0]
            engine.state.send_signal(event.rollout, "promote", engine.clock.now())

    return observe


@click.command()
@spec_files_option
@output_option
@click.option(
    "--watch",
    is_flag=True,
    help="Refresh until interrupted: rollout step, weights and healthy instances per slot.",
)
@click.option(
    "--interval",
    type=Duration(minimum=0.1),
    default="2s",
    show_default=True,
    help="Time between refreshes (2s, 1m, 1m30s).",
)
@on_option
@click.option(
    "--execution",
    default=None,
    metavar="ARN",
    help="With --on step-functions: this execution (default: the project's newest).",
)
@pass_options
def status(
    opts: Options,
    files: tuple[str, ...],
    output: str | None,
    watch: bool,
    interval: float,
    on: str,
    execution: str | None,
) -> None:
    """Per fleet: release, instances by release and health, rollout in progress.

    `--on step-functions`: the project's execution and each unit's state in it.
    """
    if on == "step-functions":
        from .execution import status_on_step_functions

        status_on_step_functions(opts, files, output, execution)
        return
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
        elif output_format(opts, output) == "json":
            emit_json(the_report.to_dict())
        else:
            _show(reports.steps_table(the_report))
        return
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
    with open_engine(opts, files) as (engine, printer), printer:
        result = engine.rollback(fleet, to, pin=not no_pin)
    if output_format(opts, output) == "json":
        emit_json(result.to_dict())
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
    if output_format(opts, output) == "json":
        emit_json({"fleet": fleet, "unpinned": removed})
    else:
        pin = removed[0]
        click.echo(
            f"{fleet}: unpinned from {pin['release']} (rolled back from "
            f"{pin.get('from_release') or '-'}); the next apply rolls out what the spec wants"
        )


def register(group: click.Group) -> None:
    for command in (plan, apply, status, history, rollback, unpin):
        group.add_command(command)
