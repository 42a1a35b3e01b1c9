"""``reconcile``: one tick of the engine, for a CI cron job or a loop.

A tick plans, starts the rollouts the plan needs (only with ``--yes``), and advances every
unfinished rollout by every step due now. It never waits out a bake, pause, TTL or analysis
window: those are journaled as deadlines, and the tick returns within ``--budget``. The exit
code says what to do next (docs/errors.md): 0 converged, 10 tick again at ``next_at``, 11 an
operator is needed, 1 something failed or rolled back in this tick, 3 locked.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from ..errors import ExitCode, UsageError
from . import Duration, Options, lease_option, output_option, pass_options, spec_files_option
from .common import emit_json, open_engine, output_format
from .common import show as _show

if TYPE_CHECKING:
    from ..core.engine import Engine
    from ..results import ReconcileResult

__all__ = ["register"]

OPERATOR_POLL = 5.0  # --loop: seconds between looks for an operator's promote
AGAIN = (int(ExitCode.PROGRESSING), int(ExitCode.WAITING))  # --loop ticks again on these


def selected_units(engine: Engine, patterns: tuple[str, ...]) -> list[str] | None:
    """The unit keys the ``--fleet`` globs match, as ``plan --fleet`` matches them (by key or
    by ``fleet@region``), from the spec alone: a tick with nothing due reads no AWS. None:
    every unit."""
    if not patterns:
        return None
    from ..core.selection import matching

    names = {key: f"{fleet}@{region}" for key, fleet, region in engine.spec.units()}
    return matching(names, patterns)


@click.command()
@spec_files_option
@output_option
@click.option(
    "--fleet",
    "fleets",
    multiple=True,
    metavar="PATTERN",
    help="Only the fleets matching this glob (repeatable; web@* for every region).",
)
@click.option(
    "--yes",
    is_flag=True,
    help="Start the rollouts the plan needs; without it a tick only advances rollouts "
    "already started (and a fleet that needs one waits for an operator, exit 11).",
)
@click.option(
    "--budget",
    type=Duration(minimum=1.0),
    default="60s",
    show_default=True,
    help="Longest time one tick polls (gates, instances coming in service); named waits "
    "(bakes, pauses, TTL, analysis windows) are never waited out in a tick.",
)
@click.option(
    "--loop",
    is_flag=True,
    help="Tick until every fleet converged (or failed, or is locked), sleeping until the "
    "earliest next_at between ticks (and polling for promote while an operator is needed).",
)
@click.option("--parallelism", default=10, show_default=True, help="Fleets at once.")
@lease_option(
    "Lease of the fleet locks a tick holds (released when the tick ends).",
)
@pass_options
def reconcile(
    opts: Options,
    files: tuple[str, ...],
    output: str | None,
    fleets: tuple[str, ...],
    yes: bool,
    budget: float,
    loop: bool,
    parallelism: int,
    lease: float,
) -> None:
    """Advance every rollout by the steps due now, then return (one tick).

    Exit codes: 0 converged; 10 progressing (a wait on time: tick again at next_at);
    11 waiting for an operator (promote, or --yes to start a rollout); 1 a rollout failed or
    rolled back during this tick; 2 invalid input; 3 locked by another process.
    """
    from .interrupts import stop_on_signals

    if not files:
        raise UsageError("reconcile: give the spec with -f SPEC")
    as_json = output_format(opts, output) == "json"
    with open_engine(opts, files, lease=lease) as (engine, printer):
        units = selected_units(engine, fleets)
        with printer, stop_on_signals(engine.stop):
            result = tick(engine, units, yes, budget, parallelism)
            while loop and result.exit_code in AGAIN:
                wake = result.next_at
                now = engine.clock.now()
                engine.clock.sleep(OPERATOR_POLL if wake is None else max(0.0, wake - now))
                engine.stop.check()
                result = tick(engine, units, yes, budget, parallelism)
    if as_json:
        emit_json(result.to_dict())
    else:
        _show(ticks_table(result))
    if result.exit_code:
        sys.exit(result.exit_code)


def tick(
    engine: Engine, units: list[str] | None, yes: bool, budget: float, parallelism: int
) -> ReconcileResult:
    return engine.reconcile(start=yes, budget=budget, units=units, parallelism=parallelism)


def ticks_table(result: ReconcileResult) -> Any:
    from rich.table import Table

    data = result.to_dict()
    table = Table(title=f"{result.project}: reconcile", title_justify="left")
    for column in ("fleet", "state", "step", "waiting for", "next at", "note"):
        table.add_column(column)
    for key, unit in data["units"].items():
        table.add_row(
            key,
            unit["state"],
            unit["step"] or "",
            unit["waiting_for"] or "",
            unit["next_at"] or "",
            unit["error"] or "",
        )
    return table


def register(group: click.Group) -> None:
    group.add_command(reconcile)
