"""``worker``: runs the ticks of rollouts on Step Functions (the orchestrator's work queue)."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import ExitCode, UsageError
from . import Duration, Options, lease_option, output_choice, pass_options, spec_files_option
from .common import connection_options, emit_json, output_format
from .orchestrator import load_orchestrated, orchestrator_connection


@click.command()
@spec_files_option
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Ticks run at once by this worker.",
)
@click.option(
    "--idle-exit",
    type=Duration(minimum=1.0),
    default=None,
    help="Exit after this long without a message (a CI runner's worker, say). "
    "Default: run until SIGTERM.",
)
@click.option(
    "--tick",
    "tick",
    default=None,
    metavar="MODULE:FACTORY",
    help="A custom tick: a callable taking a TickContext and returning a Ticker "
    "(default: the SDK's reconcile tick).",
)
@lease_option(
    "Lease of the fleet locks a tick holds: a fleet whose worker died mid-tick is "
    "taken over by another worker's tick once it has run out.",
)
@output_choice("How the summary is printed at exit.")
@pass_options
def worker(
    opts: Options,
    files: tuple[str, ...],
    concurrency: int,
    idle_exit: float | None,
    tick: str | None,
    lease: float,
    output: str | None,
) -> None:
    """Run the project's ticks: long-poll the work queue, tick, answer Step Functions.

    Each message is one tick of one unit; the worker heartbeats while it ticks, so a worker
    that dies is replaced by another within the heartbeat timeout. SIGTERM or SIGINT: finish
    the ticks in hand, then exit (a second signal exits at once; its ticks are retried).
    """
    import signal

    from ..aws.session import aws_errors
    from ..aws.workqueue import WorkQueue
    from ..core.orchestrator.ticks import TickContext, load_factory, reconcile_tick
    from ..core.orchestrator.worker import Worker

    spec, orch = load_orchestrated(files)
    factory = load_factory(tick) if tick else reconcile_tick
    with orchestrator_connection(opts, spec) as connection:
        with aws_errors("worker"):
            url = WorkQueue.find(connection.session, orch.queue)
        if url is None:
            raise UsageError(
                f"no work queue {orch.queue} in {spec.region}: run "
                "`immutable-sdk orchestrator install -f SPEC` first"
            )
        ticker = factory(TickContext(spec, files, connection_options(opts), lease=lease))
        work = Worker(
            WorkQueue(connection.session, url),
            ticker,
            concurrency=concurrency,
            idle_exit=idle_exit,
            on_event=_event_printer(opts),
        )

        def on_signal(signum: int, _frame: Any) -> None:
            if work.stopping:
                sys.stderr.flush()
                import os

                os._exit(int(ExitCode.INTERRUPTED))  # its ticks time out and are retried
            work.stop(signal.Signals(signum).name)

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            with aws_errors("worker"):
                summary = work.run()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    if output_format(opts, output) == "json":
        emit_json({"worker": summary.to_dict()})
    else:
        ticks = summary.outcomes
        click.echo(
            "worker done: "
            + (", ".join(f"{n} {k}" for k, n in sorted(ticks.items())) if ticks else "no ticks")
        )


def _event_printer(opts: Options) -> Any:
    """Worker events on stderr, one line each (JSON with --log-format json)."""
    import json

    def emit(kind: str, data: dict[str, Any]) -> None:
        if opts.log_format == "json":
            click.echo(json.dumps({"event": kind, **data}, default=str), err=True)
        else:
            fields = " ".join(f"{k}={v}" for k, v in data.items() if v is not None)
            click.echo(f"{kind} {fields}", err=True)

    return emit


def register(group: click.Group) -> None:
    group.add_command(worker)
