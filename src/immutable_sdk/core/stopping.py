"""Stopping a command at a safe point: someone asks, the rollout decides where.

The CLI turns SIGINT and SIGTERM into ``StopRequest.request`` (``cli/interrupts.py``); the
library never installs signal handlers. A rollout honours the request only at safe points:
between steps and inside waits (``locks.LockKeeper`` checks it whenever it renews the lease),
never between two AWS calls of one step. There it raises ``Interrupted``: the rollout stays
unfinished, journaled up to its last step, and ``apply`` resumes it later.
"""

from __future__ import annotations

import threading

from ..errors import Interrupted


class StopRequest:
    """A request to stop at the next safe point; set from a signal handler or any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def request(self, reason: str = "a stop was requested") -> None:
        """Ask to stop (idempotent: the first reason is kept)."""
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """A safe point: raise Interrupted if a stop was requested."""
        if self._event.is_set():
            raise Interrupted(f"interrupted ({self.reason})")
