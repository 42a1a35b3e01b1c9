"""Time, behind a protocol: every wait and timeout in the SDK goes through a Clock.

``RealClock`` is the wall clock. ``VirtualClock`` advances only when someone sleeps on it, so tests
and benchmarks run hours of bake time in milliseconds while everything else stays real.

Parallel work (fleets rolled out together) tells the clock which threads take part through a
``Reservation`` (``reserve(clock)``): a no-op on the real clock; on the virtual clock it makes
time a discrete-event schedule, so that parallel sleeps cost the longest path, not their sum.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, runtime_checkable


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


@dataclass(order=True)
class _Sleeper:
    wake: float
    seq: int
    weight: int = field(compare=False)  # reservations its thread holds (0: not a participant)
    woken: bool = field(default=False, compare=False)


class VirtualClock:
    """A clock whose time moves only when slept on; thread-safe; a discrete-event scheduler.

    Each sleeper has its own wake-up time. Threads that hold a ``Reservation`` (participants:
    the workers of a parallel apply) keep time still while they run; when every participant
    is asleep, time jumps to the earliest wake-up and wakes the sleepers due then. Threads that
    are not participants never hold time: with no participant at all, every sleep returns at
    once after moving time forward by its length (the sequential behaviour). So N fleets that
    each sleep 10 minutes in parallel take 10 virtual minutes, not N times 10.

    A participant that blocks on something other than this clock (a lock, a socket, a real
    sleep) holds virtual time still meanwhile: that work counts as instantaneous.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._start = start
        self._elapsed = 0.0
        self._cond = threading.Condition(threading.Lock())
        self._sleepers: list[_Sleeper] = []
        self._seq = itertools.count()
        self._awake = 0  # participants running (reservations held and not asleep)
        self._participants: dict[int, int] = {}  # thread id -> reservations it entered
        self.slept = 0.0  # total seconds requested, for assertions and benchmarks

    def now(self) -> float:
        with self._cond:
            return self._start + self._elapsed

    def monotonic(self) -> float:
        with self._cond:
            return self._elapsed

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        me = threading.get_ident()
        with self._cond:
            self.slept += seconds
            weight = self._participants.get(me, 0)
            sleeper = _Sleeper(self._elapsed + seconds, next(self._seq), weight)
            heapq.heappush(self._sleepers, sleeper)
            self._awake -= weight
            self._settle()
            while not sleeper.woken:
                self._cond.wait()

    def advance(self, seconds: float) -> None:
        """Move time forward without a sleeper (a test's 'meanwhile'); wakes those now due."""
        with self._cond:
            self._elapsed += max(0.0, seconds)
            while self._sleepers and self._sleepers[0].wake <= self._elapsed:
                self._wake(heapq.heappop(self._sleepers))
            self._settle()
            self._cond.notify_all()

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """The calling thread counts as asleep for the block: a process stopped (SIGSTOP, a
        paused VM) while other work runs and moves time, as a test stages it. Time jumps only
        when every participant, this one aside, sleeps; the thread runs on when the block ends.
        """
        me = threading.get_ident()
        with self._cond:
            weight = self._participants.get(me, 0)
            self._awake -= weight
            self._settle()
        try:
            yield
        finally:
            with self._cond:
                self._awake += weight

    def reserve(self) -> Reservation:
        """A place for one more participant, held from now (see ``Reservation``)."""
        with self._cond:
            self._awake += 1
        return Reservation(self)

    # --- internals (called with the condition held) ------------------------------------------

    def _wake(self, sleeper: _Sleeper) -> None:
        sleeper.woken = True
        self._awake += sleeper.weight

    def _settle(self) -> None:
        """While no participant runs, jump to the earliest wake-up and wake who is due."""
        woke = False
        while self._awake <= 0 and self._sleepers:
            wake = self._sleepers[0].wake
            self._elapsed = max(self._elapsed, wake)
            while self._sleepers and self._sleepers[0].wake <= self._elapsed:
                self._wake(heapq.heappop(self._sleepers))
            woke = True
        if woke:
            self._cond.notify_all()

    def _enter(self) -> None:
        me = threading.get_ident()
        with self._cond:
            self._participants[me] = self._participants.get(me, 0) + 1

    def _exit(self, *, entered: bool) -> None:
        me = threading.get_ident()
        with self._cond:
            if entered:
                left = self._participants.get(me, 1) - 1
                if left:
                    self._participants[me] = left
                else:
                    self._participants.pop(me, None)
            self._awake -= 1
            self._settle()


class PacedVirtualClock(VirtualClock):
    """Virtual time that lets a sliver of real time pass on every sleep, so that a wait for
    another process (an operator's ``promote`` from another terminal) polls instead of
    spinning. ``apply --virtual-clock`` uses it: hours of bakes cost a second or two."""

    PACE = 0.002  # real seconds per sleep

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(self.PACE)
        super().sleep(seconds)


class Reservation:
    """One participant's hold on a clock, taken by the thread that schedules the work.

    Taken *before* the work is handed to a worker thread (so that time cannot move while the
    thread starts), entered by the worker (``with reservation:``), and released when the block
    ends, or by ``cancel()`` when the work never ran. On a RealClock it does nothing.
    """

    def __init__(self, clock: VirtualClock | None) -> None:
        self._clock = clock
        self._state = "held"  # held -> entered -> done

    def __enter__(self) -> Reservation:
        if self._state != "held":
            raise RuntimeError("a reservation is entered once")
        self._state = "entered"
        if self._clock is not None:
            self._clock._enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release(entered=True)

    def cancel(self) -> None:
        """Give the place back without running (the work was never started)."""
        if self._state == "held":
            self._release(entered=False)

    def _release(self, *, entered: bool) -> None:
        if self._state == "done":
            return
        self._state = "done"
        if self._clock is not None:
            self._clock._exit(entered=entered)


def reserve(clock: Clock) -> Reservation:
    """A reservation on ``clock`` for work about to run on another thread (no-op if real)."""
    if isinstance(clock, VirtualClock):
        return clock.reserve()
    return Reservation(None)


def parse_time(value: Any) -> float | None:
    """Epoch seconds of a time as AWS gives it: ISO 8601 text (``...Z``, an offset, or none:
    UTC) or a datetime. None when absent or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()
