"""SIGINT and SIGTERM during a command: stop at the next safe point; a second one, at once.

The first signal asks the engine to stop (``StopRequest``): the rollout finishes the AWS call
it is in, journals where it stopped, releases the fleet's lock and leaves the rollout
unfinished; ``apply`` resumes it later. Exit code 130. A second signal exits at once, wherever
the rollout is: still resumable (the journal and AWS's tags say what was done), but the lock is
kept until its lease expires, since an AWS request may still be in flight. (Fleets roll out on
worker threads: only ending the process stops them at once.)
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import click

from ..core.stopping import StopRequest
from ..errors import ExitCode

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM request ``stop``; the second one ends the process at
    once (exit 130). Only the main thread can install handlers: elsewhere the block runs with
    the signals' default behaviour."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.requested:
            # At once, whatever the threads are doing: nothing may wait for a safe point.
            # The state store's writes are atomic, so the journal stays whole.
            click.echo(
                f"{name} again: exiting at once; the rollout is unfinished and its lock is "
                "kept until its lease expires: run apply again then to resume it "
                "(--wait-for-lock), or apply --abort-unfinished to roll it back",
                err=True,
            )
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(int(ExitCode.INTERRUPTED))
        stop.request(name)
        click.echo(
            f"{name}: stopping at the next safe point; the rollout stays resumable "
            "(send it again to exit at once)",
            err=True,
        )

    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in SIGNALS:
            previous[sig] = signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
