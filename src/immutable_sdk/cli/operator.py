"""Commands for a person steering a running rollout from anywhere: promote, abort.

They talk to the rollout through the state store named by the spec (``state:``), never to the
process that runs ``apply``: an operator on another machine, with the same spec and access to
the same state (a DynamoDB table, or the same SQLite file), steers it as well. The running
rollout reads the signal at its next wait, within seconds.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from . import Options, output_option, pass_options, spec_files_option
from .common import emit_json, exit_code, open_engine, output_format

if TYPE_CHECKING:
    from ..state.base import RolloutRecord


def _sent(record: RolloutRecord, what: str, output: str) -> None:
    if output == "json":
        emit_json({"fleet": record.fleet, "rollout": record.id, "signal": what})
    else:
        click.echo(f"{record.fleet}: {what} sent to rollout {record.id} ({record.phase})")


@click.command()
@spec_files_option
@output_option
@click.option(
    "--fleet",
    required=True,
    help="The fleet whose rollout to continue (fleet@region: in that region).",
)
@click.option(
    "--full",
    is_flag=True,
    help="Skip every remaining step: full capacity and 100% of the traffic on the new release.",
)
@pass_options
def promote(
    opts: Options, files: tuple[str, ...], output: str | None, fleet: str, full: bool
) -> None:
    """Continue FLEET's rollout: end its current pause, bake or analysis wait.

    A manual pause (``{pause: manual}``, ``promote_after: manual``, an inconclusive analysis)
    goes on; a timed pause, a bake or the wait of ``keep_previous`` ends now (the previous slot
    is then retired). A promote sent while no wait runs applies to the next one. With --full,
    the remaining steps are skipped up to 100% on the new slot (``keep_previous`` still holds).
    Exit code 2 when the fleet has no rollout in progress.
    """
    with open_engine(opts, files) as (engine, _):
        record = engine.promote(fleet, full=full)
    _sent(record, "promote --full" if full else "promote", output_format(opts, output))


@click.command()
@spec_files_option
@output_option
@click.option(
    "--fleet",
    required=True,
    help="The fleet whose rollout to roll back (fleet@region: in that region).",
)
@pass_options
def abort(opts: Options, files: tuple[str, ...], output: str | None, fleet: str) -> None:
    """Roll FLEET's running rollout back now.

    The rollout stops at its next wait and rolls back as after a failed gate: with traffic
    slots, all traffic back on the previous slot (after checking it is healthy), then the new
    slot retired. An abort rolls back even with ``rollback: {automatic: false}``. The ``apply``
    that ran the rollout exits 1 with the outcome ``rolled_back``. Exit code 2 when the fleet
    has no rollout in progress.

    A rollout that no process runs any more (it died or was interrupted, and its lock is free
    or its lease expired) is rolled back here and now, as ``apply --abort-unfinished`` would.
    """
    with open_engine(opts, files) as (engine, printer):
        with printer:
            result = engine.abort_unfinished(fleet)
        if result is None:
            record = engine.abort(fleet)
    if result is None:
        _sent(record, "abort", output_format(opts, output))
        return
    if (output_format(opts, output)) == "json":
        emit_json(result.to_dict())
    else:
        if result.outcome == "rollback_unfinished":
            click.echo(f"{result.fleet}: rollout {result.rollout}: the rollback did not finish")
        else:
            back = result.rolled_back_to or "nothing (the fleet it was creating is removed)"
            click.echo(f"{result.fleet}: rollout {result.rollout} {result.outcome}, back on {back}")
        if result.error and not result.ok:
            click.echo(f"error: {result.error}", err=True)
    if exit_code([result]):
        sys.exit(exit_code([result]))


def register(group: click.Group) -> None:
    for command in (promote, abort):
        group.add_command(command)
