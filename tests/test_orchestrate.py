"""Scheduling fleets: parallelism, depends_on, failures, fail-fast, waves, regions in flight.

The work is fake (sleeps on a VirtualClock); the engine's own tests run the real thing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from immutable_sdk.clock import VirtualClock
from immutable_sdk.core.orchestrate import Orchestrator, Unit, Wave
from immutable_sdk.errors import GateFailed
from immutable_sdk.results import FleetResult


class Fleets:
    """Fake work: each unit sleeps its duration, then succeeds or fails; records when."""

    def __init__(
        self, clock: VirtualClock, durations: dict[str, float], fail: frozenset[str] = frozenset()
    ) -> None:
        self.clock = clock
        self.durations = durations
        self.fail = fail
        self.spans: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def __call__(self, unit: Unit) -> FleetResult:
        start = self.clock.monotonic()
        self.clock.sleep(self.durations[unit.key])
        with self.lock:
            self.spans[unit.key] = (start, self.clock.monotonic())
        if unit.key in self.fail:
            raise GateFailed(f"{unit.key} is unhealthy")
        return FleetResult(unit.key, "replace", "promoted", "r1", "r2")


def units(*names: str, deps: dict[str, tuple[str, ...]] | None = None, region: str = "r"):
    deps = deps or {}
    return tuple(Unit(n, n, region, deps.get(n, ())) for n in names)


def run(fleets: Fleets, waves: list[Wave], **kwargs) -> dict[str, FleetResult]:  # type: ignore[no-untyped-def]
    bake: Callable[..., FleetResult] | None = kwargs.pop("bake", None)
    return Orchestrator(fleets.clock, **kwargs).run(waves, fleets, bake=bake)


def test_independent_fleets_run_in_parallel_bounded_by_parallelism() -> None:
    clock = VirtualClock(start=0.0)
    fleets = Fleets(clock, {f"f{i}": 600.0 for i in range(5)})
    results = run(fleets, [Wave("all", units(*fleets.durations))], parallelism=10)
    assert clock.monotonic() == 600.0  # five 10-minute rollouts together take 10 minutes
    assert all(r.outcome == "promoted" for r in results.values())

    clock = VirtualClock(start=0.0)
    fleets = Fleets(clock, {f"f{i}": 600.0 for i in range(5)})
    run(fleets, [Wave("all", units(*fleets.durations))], parallelism=2)
    assert clock.monotonic() == 1800.0  # 2 + 2 + 1
    assert sorted(s for s, _ in fleets.spans.values()) == [0, 0, 600, 600, 1200]


def test_depends_on_orders_fleets_and_dependants_start_when_their_dependency_ends() -> None:
    clock = VirtualClock(start=0.0)
    fleets = Fleets(clock, {"db": 300.0, "api": 200.0, "web": 100.0, "batch": 50.0})
    deps = {"api": ("db",), "web": ("api", "db")}
    run(fleets, [Wave("all", units("web", "api", "db", "batch", deps=deps))])
    assert fleets.spans == {
        "db": (0.0, 300.0),
        "batch": (0.0, 50.0),
        "api": (300.0, 500.0),
        "web": (500.0, 600.0),
    }


def test_a_failing_fleet_stops_its_dependants_and_nothing_else() -> None:
    clock = VirtualClock(start=0.0)
    fleets = Fleets(clock, {"db": 100.0, "api": 100.0, "web": 100.0, "batch": 500.0}, {"db"})
    deps = {"api": ("db",), "web": ("api",)}
    results = run(fleets, [Wave("all", units("db", "api", "web", "batch", deps=deps))])
    assert results["db"].outcome == "failed" and "unhealthy" in (results["db"].error or "")
    assert results["api"].outcome == "blocked"
    assert "fleet 'db' that it depends on failed" in (results["api"].error or "")
    assert results["web"].outcome == "blocked"
    assert "'api'" in (results["web"].error or "")
    assert results["batch"].outcome == "promoted"
    assert set(fleets.spans) == {"db", "batch"}


def test_fail_fast_starts_nothing_after_the_first_failure_but_lets_running_ones_finish() -> None:
    clock = VirtualClock(start=0.0)
    fleets = Fleets(clock, {"a": 100.0, "b": 500.0, "c": 100.0, "d": 100.0}, {"a"})
    results = run(fleets, [Wave("all", units("a", "b", "c", "d"))], parallelism=2, fail_fast=True)
    assert results["a"].outcome == "failed"
    assert results["b"].outcome == "promoted"  # already running: a rollout is never cut
    for name in ("c", "d"):
        assert results[name].outcome == "blocked"
        assert "--fail-fast after fleet 'a' failed" in (results[name].error or "")
    assert clock.monotonic() == 500.0


def test_waves_run_in_order_with_a_bake_after_a_wave_that_changed_something() -> None:
    clock = VirtualClock(start=0.0)
    fleets = Fleets(clock, {"one-box": 100.0, "web": 200.0, "api": 300.0})
    baked: list[tuple[str, str, float]] = []

    def bake(unit: Unit, result: FleetResult, wave: Wave) -> FleetResult:
        baked.append((wave.name, unit.key, clock.monotonic()))
        clock.sleep(wave.bake)
        return result

    waves = [
        Wave("canary", units("one-box"), bake=1800.0),
        Wave("rest", units("web", "api"), bake=600.0),
    ]
    results = run(fleets, waves, bake=bake)
    assert all(r.ok for r in results.values())
    assert baked == [("canary", "one-box", 100.0), ("rest", "web", 2200.0), ("rest", "api", 2200.0)]
    assert fleets.spans["web"] == (1900.0, 2100.0)  # after one-box and its 30-minute bake
    assert fleets.spans["api"] == (1900.0, 2200.0)
    assert clock.monotonic() == 2800.0


def test_a_wave_whose_fleets_changed_nothing_does_not_bake() -> None:
    clock = VirtualClock(start=0.0)
    baked: list[str] = []

    def noop(unit: Unit) -> FleetResult:
        return FleetResult(unit.key, "noop", "noop")

    def bake(unit: Unit, result: FleetResult, wave: Wave) -> FleetResult:
        baked.append(unit.key)
        return result

    waves = [Wave("first", units("a"), bake=600.0), Wave("second", units("b"))]
    Orchestrator(clock).run(waves, noop, bake=bake)
    assert baked == [] and clock.monotonic() == 0.0


def test_a_failed_wave_stops_every_later_wave() -> None:
    clock = VirtualClock(start=0.0)
    fleets = Fleets(clock, {"a": 100.0, "b": 100.0, "c": 100.0, "d": 100.0}, {"a"})
    waves = [Wave("first", units("a", "b")), Wave("second", units("c")), Wave("third", units("d"))]
    results = run(fleets, waves)
    assert results["b"].outcome == "promoted"  # the failing wave's other fleets still finish
    for name in ("c", "d"):
        assert results[name].outcome == "blocked"
        assert "wave 'first' failed (fleet 'a')" in (results[name].error or "")


def test_a_failed_wave_without_stop_on_failure_lets_the_next_wave_run() -> None:
    clock = VirtualClock(start=0.0)
    fleets = Fleets(clock, {"a": 100.0, "b": 100.0, "c": 100.0}, {"a"})
    deps = {"c": ("a",)}
    waves = [
        Wave("first", units("a"), stop_on_failure=False),
        Wave("second", units("b", "c", deps=deps)),
    ]
    results = run(fleets, waves)
    assert results["b"].outcome == "promoted"
    assert results["c"].outcome == "blocked"  # its dependency still failed


def test_a_failing_wave_bake_counts_as_the_waves_failure() -> None:
    clock = VirtualClock(start=0.0)
    fleets = Fleets(clock, {"a": 100.0, "b": 100.0})

    def bake(unit: Unit, result: FleetResult, wave: Wave) -> FleetResult:
        clock.sleep(60)
        raise GateFailed("alarm web-5xx is in ALARM")

    results = run(
        fleets, [Wave("first", units("a"), bake=300.0), Wave("next", units("b"))], bake=bake
    )
    assert results["a"].outcome == "failed"
    assert "wave 'first' bake: alarm web-5xx is in ALARM" in (results["a"].error or "")
    assert results["b"].outcome == "blocked"


def test_at_most_max_regions_in_flight_regions_run_at_once() -> None:
    clock = VirtualClock(start=0.0)
    names = [f"{f}-{r}" for r in ("r1", "r2", "r3") for f in ("web", "api")]
    fleets = Fleets(clock, {n: 100.0 for n in names})
    wave_units = tuple(Unit(n, n.split("-")[0], n.split("-")[1]) for n in names)
    run(fleets, [Wave("all", wave_units, max_regions_in_flight=1)], parallelism=10)
    # each region's two fleets together, one region after the other
    assert {n: fleets.spans[n][0] for n in names} == {
        "web-r1": 0.0,
        "api-r1": 0.0,
        "web-r2": 100.0,
        "api-r2": 100.0,
        "web-r3": 200.0,
        "api-r3": 200.0,
    }
    clock = VirtualClock(start=0.0)
    fleets = Fleets(clock, {n: 100.0 for n in names})
    run(fleets, [Wave("all", wave_units, max_regions_in_flight=2)], parallelism=10)
    assert clock.monotonic() == 200.0


def test_a_bug_in_the_work_is_raised_after_the_running_fleets_finish() -> None:
    clock = VirtualClock(start=0.0)
    fleets = Fleets(clock, {"a": 100.0, "b": 300.0})

    def work(unit: Unit) -> FleetResult:
        if unit.key == "a":
            raise KeyError("a bug")
        return fleets(unit)

    with pytest.raises(KeyError, match="a bug"):
        Orchestrator(clock).run([Wave("all", units("a", "b"))], work)
    assert fleets.spans["b"] == (0.0, 300.0)


def test_parallelism_must_be_positive() -> None:
    from immutable_sdk.errors import UsageError

    with pytest.raises(UsageError, match="at least 1"):
        Orchestrator(VirtualClock(), parallelism=0).run([], lambda u: FleetResult("x", "", ""))
