"""Scheduling fleets: in parallel, in dependency order, wave after wave.

``Orchestrator.run`` takes units of work (one per fleet and region) grouped into ordered waves
and runs them on a bounded thread pool:

* at most ``parallelism`` units at once; a unit starts when every fleet it ``depends_on`` has
  finished well; a unit whose dependency failed is not started (``blocked``), and neither are
  its own dependants; nothing else is affected, unless ``fail_fast``, which starts nothing new
  after the first failure (units already running finish: a rollout is never cut in half);
* a wave starts when the previous one has finished (and baked); within a wave at most
  ``max_regions_in_flight`` regions have units running; a failed wave with
  ``stop_on_failure`` blocks every later wave;
* after a wave that changed something, ``bake`` seconds of watching its changed fleets (one
  bake job per fleet, run like units); a bake that fails counts as the wave's failure.

Scheduling decisions are taken under one lock by whichever thread just finished something, and
every job's clock reservation is taken *before* it is handed to a thread: under a VirtualClock,
no virtual time passes between a fleet finishing and its dependants starting, and parallel
fleets cost the longest path, not the sum (see ``clock.VirtualClock``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from ..clock import Clock, Reservation, reserve
from ..errors import (
    ImmutableSdkError,
    Interrupted,
    LockLost,
    StateError,
)
from ..results import FleetResult
from .waves import Unit, Wave

DEFAULT_PARALLELISM = 10
# outcomes after which a wave bakes ("baking": a reconcile tick found the unit's rollout
# done and its wave's bake still going)
CHANGED = ("promoted", "created", "scaled", "baking")
# A reconcile tick left the unit waiting (its rollout, or its wave's bake, goes on in a later
# tick): its dependants and later waves do not start in this tick (``pending``).
WAITING = ("waiting",)


Work = Callable[[Unit], FleetResult]
Bake = Callable[[Unit, FleetResult, Wave], FleetResult]


def blocked(unit: Unit, reason: str, result: FleetResult | None = None) -> FleetResult:
    """The result of a unit that was not started."""
    base = result or FleetResult(unit.key, "-", "blocked")
    return replace(base, outcome="blocked", error=f"not started: {reason}")


@dataclass
class Orchestrator:
    clock: Clock
    parallelism: int = DEFAULT_PARALLELISM
    fail_fast: bool = False
    # filled while running
    results: dict[str, FleetResult] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _finished: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None

    def run(
        self,
        waves: Sequence[Wave],
        work: Work,
        *,
        bake: Bake | None = None,
        skeletons: Mapping[str, FleetResult] | None = None,
        held: Reservation | None = None,
    ) -> dict[str, FleetResult]:
        """Run every unit of ``waves``; returns results by unit key (every unit has one).

        ``skeletons`` give blocked units their action and releases (from the plan). ``held``:
        the caller's reservation, taken before it started work of its own on the clock (the
        image builds): time stands still until the first units hold their places.
        """
        if self.parallelism < 1:
            from ..errors import UsageError

            raise UsageError(f"parallelism must be at least 1, got {self.parallelism}")
        self._waves = [w for w in waves if w.units]
        self._work = work
        self._bake = bake
        self._skeletons = dict(skeletons or {})
        self._wave_index = {u.key: i for i, w in enumerate(self._waves) for u in w.units}
        self._wave = -1
        self._pending: list[Unit] = []
        self._running: dict[str, Unit] = {}
        self._baked: set[int] = set()
        self._bakes_pending: list[tuple[Unit, FleetResult]] = []
        self._bakes_running = 0
        self._stopping: str | None = None  # why nothing new starts (fail-fast, interrupt)
        self._pool = ThreadPoolExecutor(
            max_workers=self.parallelism + 2, thread_name_prefix="immutable-sdk-fleet"
        )
        try:
            # Hold time still while the first units are handed out, as a finishing worker
            # does while it hands out the next ones.
            with held or reserve(self.clock), self._lock:
                self._next_wave()
            while not self._finished.wait(0.2):
                pass
        except BaseException:
            with self._lock:
                self._stopping = self._stopping or "interrupted"
                self._pending.clear()
            raise
        finally:
            self._pool.shutdown(wait=True)
        if self._error is not None:
            raise self._error
        return self.results

    # --- scheduling (every method below runs with self._lock held) ---------------------------

    def _next_wave(self) -> None:
        self._wave += 1
        if self._wave >= len(self._waves):
            self._finished.set()
            return
        self._pending = list(self._waves[self._wave].units)
        self._after_change()

    def _after_change(self) -> None:
        if self._pending:
            self._dispatch()
        if self._running or self._bakes_running:
            return
        for unit in list(self._pending):  # nothing runs and these cannot start: say why
            self._block(unit, "a fleet it depends on never finished")
        self._wave_done()

    def _failed(self, key: str) -> bool:
        result = self.results.get(key)
        return result is not None and not result.ok and result.outcome not in WAITING

    def _waiting(self, key: str) -> bool:
        result = self.results.get(key)
        return result is not None and result.outcome in WAITING

    def _blocker(self, unit: Unit) -> str | None:
        """Why ``unit`` can never start, if so."""
        if self._stopping:
            return self._stopping
        for dep in unit.depends_on:
            if self._waiting(dep):
                return f"waiting for fleet {dep!r} that it depends on"
            if self._failed(dep):
                return f"fleet {dep!r} that it depends on failed"
            if self._wave_index.get(dep, -1) > self._wave:
                return f"it depends on fleet {dep!r} of a later wave"
        return None

    def _dispatch(self) -> None:
        wave = self._waves[self._wave]
        progress = True
        while progress:
            progress = False
            for unit in list(self._pending):
                reason = self._blocker(unit)
                if reason:
                    self._block(unit, reason)
                    progress = True
                    continue
                if any(d in self._wave_index and d not in self.results for d in unit.depends_on):
                    continue  # a dependency has not finished yet
                if len(self._running) >= self.parallelism:
                    return
                regions = {u.region for u in self._running.values()}
                limit = wave.max_regions_in_flight
                if limit and unit.region not in regions and len(regions) >= limit:
                    continue
                self._start(unit)
                progress = True

    def _block(self, unit: Unit, reason: str) -> None:
        self._pending.remove(unit)
        self.results[unit.key] = blocked(unit, reason, self._skeletons.get(unit.key))
        if reason.startswith("waiting for"):  # a later tick starts it
            self.results[unit.key] = replace(self.results[unit.key], outcome="pending")

    def _start(self, unit: Unit) -> None:
        self._pending.remove(unit)
        self._running[unit.key] = unit
        reservation = reserve(self.clock)
        try:
            self._pool.submit(self._run_unit, unit, reservation)
        except BaseException:
            reservation.cancel()
            raise

    def _run_unit(self, unit: Unit, reservation: Any) -> None:
        with reservation:
            error: BaseException | None = None
            try:
                result = self._work(unit)
            except ImmutableSdkError as exc:
                # An interrupt, or a state store that cannot be read or written (damaged,
                # unreachable): stop starting fleets and end the apply with that error.
                if isinstance(exc, (Interrupted, StateError)):
                    error = exc
                base = self._skeletons.get(unit.key) or FleetResult(unit.key, "-", "failed")
                outcome = "lock_lost" if isinstance(exc, LockLost) else "failed"
                result = replace(base, outcome=outcome, error=str(exc))
            except BaseException as exc:  # a bug: stop starting things, re-raise at the end
                error = exc
                result = FleetResult(unit.key, "-", "failed", error=repr(exc))
            with self._lock:
                try:
                    self.results[unit.key] = result
                    del self._running[unit.key]
                    if error is not None and self._error is None:
                        self._error = error
                        self._stopping = (
                            f"the state store failed for fleet {unit.key!r}"
                            if isinstance(error, StateError)
                            else "the apply was interrupted"
                        )
                    elif not result.ok and self.fail_fast and not self._stopping:
                        self._stopping = f"--fail-fast after fleet {unit.key!r} failed"
                    self._after_change()
                except BaseException as exc:  # never leave the main thread waiting
                    self._error = self._error or exc
                    self._finished.set()

    def _wave_done(self) -> None:
        """The current wave's units all finished: bake it, then stop or go on."""
        wave = self._waves[self._wave]
        held = [u.key for u in wave.units if self._waiting(u.key)]
        if held:  # a later tick finishes the wave (and bakes it): nothing after it starts
            reason = f"waiting for wave {wave.name!r} (fleet {held[0]!r})"
            for later in self._waves[self._wave + 1 :]:
                for unit in later.units:
                    result = blocked(unit, reason, self._skeletons.get(unit.key))
                    self.results[unit.key] = replace(result, outcome="pending")
            self._finished.set()
            return
        if self._wave not in self._baked:
            self._baked.add(self._wave)
            if wave.bake > 0 and self._bake is not None and not self._stopping:
                self._bakes_pending = [
                    (u, self.results[u.key])
                    for u in wave.units
                    if self.results[u.key].outcome in CHANGED
                ]
            if self._bakes_pending:
                self._start_bakes()
                return
        failed = [u.key for u in wave.units if self._failed(u.key)]
        if failed and (wave.stop_on_failure or self._stopping):
            reason = self._stopping or f"wave {wave.name!r} failed (fleet {failed[0]!r})"
            for later in self._waves[self._wave + 1 :]:
                for unit in later.units:
                    self.results[unit.key] = blocked(unit, reason, self._skeletons.get(unit.key))
            self._finished.set()
            return
        self._next_wave()

    def _start_bakes(self) -> None:
        while self._bakes_pending and self._bakes_running < self.parallelism:
            unit, result = self._bakes_pending.pop(0)
            self._bakes_running += 1
            reservation = reserve(self.clock)
            try:
                self._pool.submit(self._run_bake, unit, result, reservation)
            except BaseException:
                reservation.cancel()
                raise

    def _run_bake(self, unit: Unit, result: FleetResult, reservation: Any) -> None:
        wave = self._waves[self._wave]
        with reservation:
            error: BaseException | None = None
            assert self._bake is not None
            try:
                after = self._bake(unit, result, wave)
            except ImmutableSdkError as exc:
                after = replace(result, outcome="failed", error=f"wave {wave.name!r} bake: {exc}")
            except BaseException as exc:
                error, after = exc, result
            with self._lock:
                try:
                    self.results[unit.key] = after
                    self._bakes_running -= 1
                    if error is not None and self._error is None:
                        self._error = error
                        self._stopping = "the apply was interrupted"
                    if self._bakes_pending and not self._stopping:
                        self._start_bakes()
                    elif not self._bakes_running:
                        self._bakes_pending = []
                        self._wave_done()
                except BaseException as exc:
                    self._error = self._error or exc
                    self._finished.set()
