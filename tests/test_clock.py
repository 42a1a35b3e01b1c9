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


def _parallel(clock: VirtualClock, *works) -> dict[int, float]:  # type: ignore[no-untyped-def]
    """Run each work on its own thread as a participant; returns the time each one ended."""
    from immutable_sdk.clock import reserve

    ended: dict[int, float] = {}

    def run(i: int, reservation, work) -> None:  # type: ignore[no-untyped-def]
        with reservation:
            work()
            ended[i] = clock.monotonic()

    # Reservations are taken before any thread starts, so time cannot move early.
    reservations = [reserve(clock) for _ in works]
    threads = [
        threading.Thread(target=run, args=(i, r, w))
        for i, (r, w) in enumerate(zip(reservations, works, strict=True))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive()
    return ended


def test_parallel_sleeps_take_the_longest_path_not_the_sum() -> None:
    clock = VirtualClock(start=0.0)
    ended = _parallel(
        clock,
        lambda: clock.sleep(600),
        lambda: clock.sleep(1200),
        lambda: [clock.sleep(60) for _ in range(30)],  # 1800 in steps
    )
    assert ended == {0: 600.0, 1: 1200.0, 2: 1800.0}
    assert clock.monotonic() == 1800.0
    assert clock.slept == 600 + 1200 + 1800


def test_many_parallel_participants_interleave_in_time_order() -> None:
    clock = VirtualClock(start=0.0)
    log: list[tuple[float, int]] = []
    lock = threading.Lock()

    def worker(i: int):  # type: ignore[no-untyped-def]
        def work() -> None:
            for _ in range(5):
                clock.sleep(i + 1)
                with lock:
                    log.append((clock.monotonic(), i))

        return work

    ended = _parallel(clock, *[worker(i) for i in range(20)])
    assert ended == {i: 5.0 * (i + 1) for i in range(20)}
    times = [t for t, _ in log]
    assert times == sorted(times)  # nobody observed time going back


def test_a_running_participant_holds_time_still() -> None:
    clock = VirtualClock(start=0.0)
    busy = threading.Event()
    woke: list[float] = []

    def sleeper() -> None:
        clock.sleep(5)
        woke.append(clock.monotonic())

    def worker() -> None:
        busy.wait(timeout=10)  # real work that takes no virtual time
        clock.sleep(10)

    from immutable_sdk.clock import reserve

    reservations = [reserve(clock), reserve(clock)]

    def run(r, work) -> None:  # type: ignore[no-untyped-def]
        with r:
            work()

    threads = [
        threading.Thread(target=run, args=(r, w))
        for r, w in zip(reservations, (sleeper, worker), strict=True)
    ]
    for t in threads:
        t.start()
    time.sleep(0.2)
    assert woke == [] and clock.monotonic() == 0.0  # the worker still runs: no time passes
    busy.set()
    for t in threads:
        t.join(timeout=10)
    assert woke == [5.0]
    assert clock.monotonic() == 10.0


def test_a_cancelled_reservation_releases_time() -> None:
    from immutable_sdk.clock import RealClock, reserve

    clock = VirtualClock(start=0.0)
    held = reserve(clock)
    held.cancel()
    clock.sleep(3)  # would wait forever if the cancelled place still held time
    assert clock.monotonic() == 3.0
    with reserve(RealClock()):  # a no-op on the real clock
        pass


def test_a_stopped_participant_lets_time_move_for_the_others() -> None:
    clock = VirtualClock()
    mine, theirs = clock.reserve(), clock.reserve()
    woke = threading.Event()

    def other() -> None:
        with theirs:
            clock.sleep(10)
        woke.set()

    with mine:
        thread = threading.Thread(target=other)
        thread.start()
        assert not woke.wait(0.2)  # this participant runs: time stands still for the other
        with clock.stopped():  # ... until it is stopped (SIGSTOP, as a test stages it)
            assert woke.wait(10)
        assert clock.monotonic() == 10
    thread.join()
