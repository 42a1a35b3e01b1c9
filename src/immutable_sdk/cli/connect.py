"""The one way commands open AWS and the state store: the global options, applied once.

``open_engine`` (every command that plans, applies or inspects) and ``open_connection``
(commands that need only the session and the state store: ``state init``, ``unlock``) both pass
the same options (``--sandbox``, ``--endpoint-url``, ``--profile``, ``--max-attempts``) to
``connection.Connection``; no command builds a session or opens state another way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from . import Options

if TYPE_CHECKING:
    from ..connection import Connection
    from ..engine import Engine
    from ..render import EventPrinter
    from ..spec.model import Spec


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
    opts: Options, files: Sequence[str], **engine_options: Any
) -> Iterator[tuple[Engine, EventPrinter]]:
    """An engine for the spec files with the global options, and its event printer."""
    from ..engine import Engine
    from ..render import EventPrinter

    printer = EventPrinter(fmt=opts.log_format)
    engine = Engine.from_files(files, sink=printer, **connection_options(opts), **engine_options)
    for warning in engine.spec.warnings:  # as validate words them; validate --strict refuses
        click.echo(f"warning: {warning}", err=True)
    try:
        yield engine, printer
    finally:
        engine.close()


@contextmanager
def open_connection(opts: Options, spec: Spec) -> Iterator[Connection]:
    """The session and the way to the state store, without an engine (nothing seeded)."""
    from ..connection import Connection

    connection = Connection.open(spec, **connection_options(opts), seed=False)
    try:
        yield connection
    finally:
        connection.close()
