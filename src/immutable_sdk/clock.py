"""Time, behind a protocol: every wait and timeout in the SDK goes through a Clock.

``RealClock`` is the wall clock. ``VirtualClock`` advances only when someone sleeps on it, so tests
and benchmarks run hours of bake time in milliseconds while everything else stays real.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (wall time, for timestamps and leases)."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes back (for durations and timeouts)."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (non-positive values return at once)."""


class RealClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """A clock whose time moves only when slept on; thread-safe.

    With several threads sleeping at once (parallel fleets), each sleep advances the shared time
    to at least the sleeper's wake-up time, so total virtual time is the longest path rather than
    the sum of all sleeps.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._start = start
        self._elapsed = 0.0
        self._lock = threading.Lock()
        self.slept = 0.0  # total seconds requested, for assertions and benchmarks

    def now(self) -> float:
        with self._lock:
            return self._start + self._elapsed

    def monotonic(self) -> float:
        with self._lock:
            return self._elapsed

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            self.slept += seconds
            self._elapsed += seconds

    def advance(self, seconds: float) -> None:
        """Move time forward without a sleeper (a test's 'meanwhile')."""
        with self._lock:
            self._elapsed += max(0.0, seconds)
