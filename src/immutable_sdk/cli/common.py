"""What the commands share: opening AWS and the state store, output format, exit codes.

``open_engine`` (every command that plans, applies or inspects) and ``open_connection``
(commands that need only the session and the state store: ``state init``, ``unlock``) both pass
the same options (``--sandbox``, ``--endpoint-url``, ``--profile``, ``--max-attempts``) to
``connection.Connection``; no command builds a session or opens state another way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from ..errors import ExitCode
from . import Options

if TYPE_CHECKING:
    from ..core.connection import Connection
    from ..core.engine import Engine
    from ..lifecycle import Event
    from ..spec.model import Spec
    from .render import EventPrinter


def connection_options(opts: Options) -> dict[str, Any]:
    """Where AWS calls go, from the global options."""
    return {
        "sandbox": opts.sandbox,
        "endpoint_url": opts.endpoint_url,
        "profile": opts.profile,
        "max_attempts": opts.max_attempts,
    }


@contextmanager
def open_engine(
    opts: Options,
    files: Sequence[str],
    *,
    observe: Callable[[Event], None] | None = None,
    adjust: Callable[[Spec], Spec] | None = None,
    **engine_options: Any,
) -> Iterator[tuple[Engine, EventPrinter]]:
    """An engine for the spec files with the global options, and its event printer;
    ``observe`` also sees every event (after the printer); ``adjust`` changes the loaded
    spec before the engine gets it."""
    from ..core.engine import Engine
    from .render import EventPrinter

    printer = EventPrinter(fmt=opts.log_format)
    clock = virtual_clock(opts)
    if clock is not None and "clock" not in engine_options:
        engine_options = {**engine_options, "clock": clock}
    sink: Callable[[Event], None] = printer
    if observe is not None:
        seen = observe

        def sink(event: Event) -> None:
            printer(event)
            seen(event)

    if adjust is None:
        engine = Engine.from_files(files, sink=sink, **connection_options(opts), **engine_options)
    else:
        from ..plugins import load_plugins
        from ..spec.load import load_spec

        plugins = load_plugins()
        spec = adjust(load_spec(files, plugins=plugins))
        engine = Engine(
            spec, plugins=plugins, sink=sink, **connection_options(opts), **engine_options
        )
    for warning in engine.spec.warnings:  # as validate words them; validate --strict refuses
        click.echo(f"warning: {warning}", err=True)
    try:
        yield engine, printer
    finally:
        engine.close()


VIRTUAL_CLOCK = "IMMUTABLE_SDK_VIRTUAL_CLOCK"


def virtual_clock(opts: Options) -> Any:
    """A testing aid: with ``IMMUTABLE_SDK_VIRTUAL_CLOCK=EPOCH`` (seconds), the command runs
    on a virtual clock starting at that time, so that successive ``reconcile`` processes can
    let hours pass without sleeping (a test sets it to the ``next_at`` a tick returned).
    Refused against real AWS: only with ``--sandbox`` or ``--endpoint-url``."""
    import os

    value = os.environ.get(VIRTUAL_CLOCK, "").strip()
    if not value:
        return None
    if not (opts.sandbox or opts.endpoint_url):
        from ..errors import UsageError

        raise UsageError(
            f"{VIRTUAL_CLOCK} is a testing aid for the sandbox or an emulator (--sandbox, "
            "--endpoint-url): against AWS, time is real"
        )
    try:
        start = float(value)
    except ValueError:
        from ..errors import UsageError

        raise UsageError(f"{VIRTUAL_CLOCK}={value!r}: give epoch seconds (1800000000)") from None
    from ..clock import VirtualClock

    return VirtualClock(start=start)


@contextmanager
def open_connection(opts: Options, spec: Spec) -> Iterator[Connection]:
    """The session and the way to the state store, without an engine (nothing seeded)."""
    from ..core.connection import Connection

    connection = Connection.open(spec, **connection_options(opts), seed=False)
    try:
        yield connection
    finally:
        connection.close()


def output_format(opts: Options, output: str | None) -> str:
    """The format a command prints data in: its own ``--output``, else the global one."""
    return output or opts.output


def show(*parts: Any) -> None:
    """Print rich renderables (tables, text) on stdout."""
    from .render import console

    out = console(sys.stdout)
    for part in parts:
        out.print(part)


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


FORMAT_VERSION = "1.0"  # of every ``-o json`` output; schemas/output.schema.json describes it


def emit_json(data: dict[str, Any]) -> None:
    """Print one command's data as JSON: ``format_version`` first, secrets redacted.

    The shapes are published in ``schemas/output.schema.json`` (a test validates every
    command's output against it); a change that breaks a reader bumps the major version.
    """
    from .render import print_json

    print_json({"format_version": FORMAT_VERSION, **data})
