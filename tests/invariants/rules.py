"""The safety machine: hypothesis draws rules (releases, signals, faults, operators) at random,
the world runs them on the emulator, the monitor checks the invariants after each one.

A failing example is shrunk and printed as the sequence of rules below, with their arguments:
each rule's name says what happens, ``at_wait=N`` means "while the next apply waits for the
N-th time", and ``*_next_apply`` rules arm a fault for the next apply that rolls out a release.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import hypothesis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from immutable_sdk.core.engine import Engine
from immutable_sdk.sandbox.emulator import Emulator

from .faults import Burst, CrashAt, LostResponse
from .monitor import Monitor
from .spec import FLEET, ROLLING, SLOTTED
from .world import World

WAITS = st.integers(min_value=1, max_value=12)
MAX_ARMED = 2  # faults armed, or events scheduled, for one apply: more only dilutes releases
CALLS = st.integers(min_value=0, max_value=20)
IMAGE = st.sampled_from(["v1", "v2"])


@dataclass
class Stats:
    """What a run of the machine exercised (for the soak's report)."""

    examples: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)


@dataclass
class Bench:
    """Where the machine runs: an emulator, a scratch folder, and the stats it adds to."""

    emulator: Emulator
    root: Path
    stats: Stats = field(default_factory=Stats)


class DeploymentSafety(RuleBasedStateMachine):
    bench: ClassVar[Bench]

    def __init__(self) -> None:
        super().__init__()
        self.world: World | None = None
        self.monitor: Monitor | None = None

    # --- set-up and tear-down ------------------------------------------------------------

    @initialize(kind=st.sampled_from(["rolling", "slots"]))
    def fleet(self, kind: str) -> None:
        bench = self.bench
        bench.stats.examples += 1
        bench.emulator.reset()
        tmp = Path(tempfile.mkdtemp(prefix="example-", dir=bench.root))
        self.world = World(bench.emulator.url, tmp, kind)
        self.monitor = Monitor(self.world, bench.stats.checks)
        strategy = next(iter(ROLLING if kind == "rolling" else SLOTTED))
        self.world.new_release(strategy, "v1")
        first = self.world.apply("create the fleet")
        assert first.outcome == "promoted", f"creating the fleet failed: {first}"

    def teardown(self) -> None:
        world, monitor = self.world, self.monitor
        if world is None or monitor is None:
            return
        try:
            with world.store() as state:
                unfinished = state.unfinished_rollout(FLEET)
            if unfinished is not None:  # the last word: the next apply converges it
                world.after_lease()
                world.apply("final apply")
                monitor.converged("after the final apply")
                monitor.settled("after the final apply")
            monitor.raise_violations()
        finally:
            self.world = None  # once: a test may end the machine itself, then the fixture
            world.close()
            shutil.rmtree(world.tmp, ignore_errors=True)

    @property
    def w(self) -> World:
        assert self.world is not None
        return self.world

    def count(self, name: str) -> None:
        self.bench.stats.rules[name] += 1

    @invariant()
    def safe(self) -> None:
        if self.monitor is None:
            return
        self.monitor.settled("after the rule")
        self.monitor.raise_violations()

    # --- releases ------------------------------------------------------------------------

    @precondition(lambda self: self.world is not None and self.world.kind == "rolling")
    @rule(strategy=st.sampled_from(sorted(ROLLING)), image=IMAGE)
    def release_rolling(self, strategy: str, image: str) -> None:
        self.count("release_rolling")
        self.w.new_release(strategy, image)
        self.w.apply(f"release {image} ({strategy})", faults=True)

    @precondition(lambda self: self.world is not None and self.world.kind == "slots")
    @rule(strategy=st.sampled_from(sorted(SLOTTED)), image=IMAGE)
    def release_slots(self, strategy: str, image: str) -> None:
        self.count("release_slots")
        self.w.new_release(strategy, image)
        self.w.apply(f"release {image} ({strategy})", faults=True)

    @rule(abort_unfinished=st.booleans())
    def next_apply(self, abort_unfinished: bool) -> None:
        """A fresh process applies the spec again, once any dead holder's lease expired."""
        self.count("next_apply")
        with self.w.store() as state:
            unfinished = state.unfinished_rollout(FLEET)
        if unfinished is not None:
            self.w.after_lease()
        self.w.apply("next apply", abort_unfinished=abort_unfinished)
        if unfinished is not None and self.monitor is not None:
            self.monitor.converged("after the next apply")

    @precondition(lambda self: hasattr(Engine, "reconcile"))
    @rule()
    def reconcile(self) -> None:
        """Extension point: once the tick engine exists, a fresh process's ``reconcile``
        stands in for ``apply`` (the precondition keeps the rule out until then)."""
        self.count("reconcile")
        self.w.process("reconcile", lambda e: e.reconcile())

    # --- health signals ------------------------------------------------------------------

    @rule(state=st.sampled_from(["ALARM", "OK"]), at_wait=st.none() | WAITS)
    def alarm(self, state: str, at_wait: int | None) -> None:
        self.count(f"alarm_{state.lower()}")
        if at_wait is None:
            self.w.alarm(state)
        else:
            self.w.schedule(at_wait, "alarm", lambda: self.w.alarm(state))

    @rule(
        mode=st.sampled_from(["unhealthy", "slow", "healthy"]),
        image=st.sampled_from(["v1", "v2", "all"]),
        at_wait=st.none() | WAITS,
    )
    def http_endpoint(self, mode: str, image: str, at_wait: int | None) -> None:
        self.count(f"http_{mode}")
        if at_wait is None:
            self.w.http(mode, image)
        else:
            self.w.schedule(at_wait, "http", lambda: self.w.http(mode, image))

    # --- faults for the next apply -------------------------------------------------------

    @precondition(lambda self: self.world is not None and len(self.world.armed) < MAX_ARMED)
    @rule(call=CALLS, after=st.booleans())
    def crash_next_apply(self, call: int, after: bool) -> None:
        self.count("crash_next_apply")
        self.w.armed.append(CrashAt(call, after))

    @precondition(lambda self: self.world is not None and len(self.world.armed) < MAX_ARMED)
    @rule(kind=st.sampled_from(["throttle", "5xx"]), start=CALLS, length=st.integers(1, 3))
    def burst_next_apply(self, kind: str, start: int, length: int) -> None:
        self.count(f"burst_{kind}")
        self.w.armed.append(Burst(kind, start, length))

    @precondition(lambda self: self.world is not None and len(self.world.armed) < MAX_ARMED)
    @rule(call=CALLS)
    def lose_response_next_apply(self, call: int) -> None:
        self.count("lose_response_next_apply")
        self.w.armed.append(LostResponse(call))

    @precondition(lambda self: self.world is not None and len(self.world.scheduled) < MAX_ARMED)
    @rule(how=st.sampled_from(["force-unlock", "lease-expiry"]), at_wait=WAITS)
    def takeover_during_next_apply(self, how: str, at_wait: int) -> None:
        """Another process takes the fleet while the apply's process is stopped: after an
        ``unlock --force``, or once the stopped holder's lease expired."""
        self.count(f"takeover_{how}")
        self.w.schedule(at_wait, "takeover", lambda: self.w.intruder(how))

    # --- operators -----------------------------------------------------------------------

    @precondition(lambda self: self.world is not None and len(self.world.scheduled) < MAX_ARMED)
    @rule(action=st.sampled_from(["promote", "promote-full", "abort"]), at_wait=WAITS)
    def operator_during_next_apply(self, action: str, at_wait: int) -> None:
        self.count(f"operator_{action}")
        what = "abort" if action == "abort" else "promote"
        self.w.schedule(at_wait, what, lambda: self.w.operator_signal(action))

    @precondition(
        lambda self: (
            self.world is not None and self.world.outcomes[-1].label != "operator rollback"
        )  # not twice in a row
    )
    @rule()
    def operator_rollback(self) -> None:
        self.count("operator_rollback")
        with self.w.store() as state:
            if state.unfinished_rollout(FLEET) is not None:
                return  # the CLI refuses while a rollout is in flight; next_apply handles it
        self.w.process("operator rollback", lambda e: e.rollback(FLEET))


def run_machine(bench: Bench, config: settings, seed: int | None = None) -> None:
    """Run the machine under ``config`` (a hypothesis settings profile) on ``bench``;
    ``seed`` fixes hypothesis's random source (the soak's ``--seed``)."""

    class Bound(DeploymentSafety):
        pass

    Bound.bench = bench
    Bound.__name__ = Bound.__qualname__ = "DeploymentSafety"
    machine: type[DeploymentSafety] = Bound if seed is None else hypothesis.seed(seed)(Bound)
    run_state_machine_as_test(machine, settings=config)


def describe(stats: Stats) -> dict[str, Any]:
    return {"examples": stats.examples, "rules": dict(stats.rules), "checks": dict(stats.checks)}
