"""The clocks every wait goes through: the wall clock, and the virtual one tests run on."""

from __future__ import annotations

import threading
import time

import pytest

from immutable_sdk.clock import Clock, RealClock, VirtualClock


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(RealClock(), Clock)
    assert isinstance(VirtualClock(), Clock)


def test_real_clock_tells_wall_time_and_monotonic_time() -> None:
    clock = RealClock()
    assert abs(clock.now() - time.time()) < 1
    first = clock.monotonic()
    assert clock.monotonic() >= first


def test_real_clock_sleeps_for_real() -> None:
    clock = RealClock()
    start = time.monotonic()
    clock.sleep(0.05)
    assert time.monotonic() - start >= 0.05


@pytest.mark.parametrize("seconds", [0, -5])
def test_real_clock_returns_at_once_for_non_positive_sleeps(seconds: float) -> None:
    start = time.monotonic()
    RealClock().sleep(seconds)
    assert time.monotonic() - start < 0.05


def test_virtual_clock_starts_where_told() -> None:
    assert VirtualClock().now() == 1_800_000_000.0
    clock = VirtualClock(start=1000.0)
    assert (clock.now(), clock.monotonic(), clock.slept) == (1000.0, 0.0, 0.0)


def test_virtual_sleep_advances_time_at_once() -> None:
    clock = VirtualClock(start=1000.0)
    started = time.monotonic()
    clock.sleep(3600)
    clock.sleep(1.5)
    assert time.monotonic() - started < 0.5  # an hour of virtual time costs nothing
    assert (clock.now(), clock.monotonic(), clock.slept) == (4601.5, 3601.5, 3601.5)


@pytest.mark.parametrize("seconds", [0, -10])
def test_virtual_clock_ignores_non_positive_sleeps(seconds: float) -> None:
    clock = VirtualClock(start=1000.0)
    clock.sleep(seconds)
    assert (clock.now(), clock.slept) == (1000.0, 0.0)


def test_advance_moves_time_without_a_sleeper() -> None:
    clock = VirtualClock(start=1000.0)
    clock.advance(60)
    assert (clock.now(), clock.monotonic(), clock.slept) == (1060.0, 60.0, 0.0)
    clock.advance(-30)  # time never goes back
    assert clock.now() == 1060.0


def test_virtual_clock_is_safe_across_threads() -> None:
    clock = VirtualClock(start=0.0)
    threads_count, sleeps = 8, 2000
    problems: list[str] = []
    barrier = threading.Barrier(threads_count)

    def sleeper() -> None:
        barrier.wait(timeout=30)
        last = clock.now()
        for _ in range(sleeps):
            before = clock.now()
            if before < last:
                problems.append(f"time went back from {last} to {before}")
            clock.sleep(0.25)
            last = clock.now()
            if last < before + 0.25:  # a sleeper wakes no earlier than it asked
                problems.append(f"slept 0.25 from {before} but woke at {last}")

    threads = [threading.Thread(target=sleeper) for _ in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert problems == []
    assert clock.slept == threads_count * sleeps * 0.25  # no sleep lost to a race
    assert clock.monotonic() >= sleeps * 0.25
