"""The world the safety machine acts on: the emulator account, the virtual clock, a health
endpoint, the processes that apply the spec, and what happens while they wait.

Every ``apply`` is a new process (a new engine with its own owner id, as a new CLI run would
be). Things scheduled "at wait N" happen when that apply sleeps for the N-th time (a gate's
poll, a bake, a pause): an alarm, the health endpoint, an operator's signal, or another process
that takes the fleet over while the first one is stopped. The monitor samples the account at
every wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from immutable_sdk.clock import VirtualClock
from immutable_sdk.core.engine import Engine
from immutable_sdk.core.rollout.signals import signal_rollout
from immutable_sdk.errors import ImmutableSdkError
from immutable_sdk.state.sqlite import SqliteStateStore
from immutable_sdk.testing.endpoints import HealthServer
from immutable_sdk.testing.testbed import SandboxAccount

from .faults import Crash, Fault
from .spec import ALARM, FLEET, IMAGES, LEASE, MANUAL, PROJECT, ROLLING, SLOTTED, spec_text
from .store import WatchedStore

SLOW_SECONDS = 1.5  # an answer slower than the check's request_timeout (1 s)
MAX_WAITS = 2000  # an apply that waits more often than this is stuck (a bug, reported)
AUTO_PROMOTE_AFTER = 3  # waits in a manual pause before the operator promotes, unless told


class Hung(BaseException):
    """An apply that never finished (raised from its wait, as a watchdog would kill it)."""


class MonitoredClock(VirtualClock):
    """The virtual clock, calling ``on_wait`` (once per sleep, not re-entrantly) first."""

    def __init__(self) -> None:
        super().__init__()
        self.on_wait: Callable[[], None] | None = None
        self._busy = threading.local()

    def sleep(self, seconds: float) -> None:
        if seconds > 0 and self.on_wait is not None and not getattr(self._busy, "on", False):
            self._busy.on = True
            try:
                self.on_wait()
            finally:
                self._busy.on = False
        super().sleep(seconds)


@dataclass
class Outcome:
    """How one apply (or operator command) ended: a result, a crash, or an SDK error."""

    label: str
    ended: str  # result | crash | hung | error
    outcome: str | None = None  # the fleet's outcome when ended == "result"
    error: str | None = None


@dataclass
class Scheduled:
    at_wait: int
    what: str
    action: Callable[[], None] = field(repr=False)


class World:
    """One example's account: the spec, the processes, the health signals (see module doc)."""

    def __init__(self, url: str, tmp: Path, kind: str) -> None:
        self.tmp = tmp
        self.kind = kind
        self.strategy = next(iter(ROLLING if kind == "rolling" else SLOTTED))
        self.image = "v1"
        self.clock = MonitoredClock()
        self.account = SandboxAccount(url, tmp, clock=self.clock)
        self.modes: dict[str, str] = {name: "healthy" for name in IMAGES}
        self._amis: dict[str, str] = {}
        self.server = HealthServer(self._answer).__enter__()
        # A probe that gave up on a slow answer closes its end: not worth a traceback.
        self.server.server.handle_error = lambda *_: None  # type: ignore[method-assign]
        self.armed: list[Fault] = []
        self.scheduled: list[Scheduled] = []
        self.outcomes: list[Outcome] = []
        self.write_violations: list[str] = []  # from the watched stores (invariant 3)
        self.waits = 0  # waits of the apply in progress (its own, not nested processes')
        self.sampler: Callable[[str], None] | None = None  # the monitor, at every wait
        self._processes = 0
        self._pending: list[str] = []  # processes that took the lock and run after this wait
        self._boot = 0
        self._paused_at: int | None = None
        self._seen_events = 0
        self.clock.on_wait = self._during_wait
        self.aws = self.account.session  # the monitor's and operators' session: not counted

    def close(self) -> None:
        self.server.__exit__()

    # --- the health signals ----------------------------------------------------------------

    def _answer(self, instance_id: str) -> int:
        ami = self._amis.get(instance_id)
        if ami is None:
            ec2 = self.aws.client("ec2")
            found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
            ami = found[0]["Instances"][0]["ImageId"] if found else "?"
            self._amis[instance_id] = ami
        image = next((name for name, a in IMAGES.items() if a == ami), "?")
        mode = self.modes.get(image, "healthy")
        if mode == "slow":
            time.sleep(SLOW_SECONDS)
        return 500 if mode == "unhealthy" else 200

    def alarm(self, state: str) -> None:
        self.aws.client("cloudwatch").set_alarm_state(
            AlarmName=ALARM, StateValue=state, StateReason=f"set by the safety machine: {state}"
        )

    def http(self, mode: str, image: str) -> None:
        for name in IMAGES if image == "all" else (image,):
            self.modes[name] = mode

    # --- processes -------------------------------------------------------------------------

    def spec_path(self) -> Path:
        path = self.tmp / "spec.yaml"
        path.write_text(spec_text(self.kind, self.strategy, self.server.port))
        return path

    def new_release(self, strategy: str, image: str) -> None:
        """The next apply rolls out a new release: another image and/or new user data."""
        self.strategy, self.image = strategy, image
        self._boot += 1
        (self.tmp / "boot.sh").write_text(f"#!/bin/sh\necho release {self._boot}\n")

    def engine(self, *, role: str = "apply", owner: str | None = None) -> Engine:
        if owner is None:
            self._processes += 1
            owner = f"{role}-{self._processes}"
        path = self.spec_path()
        if not (self.tmp / "boot.sh").exists():
            (self.tmp / "boot.sh").write_text("#!/bin/sh\necho release 0\n")
        store = WatchedStore(
            SqliteStateStore(self.tmp / "state.db", PROJECT), owner, self.write_violations
        )
        return self.account.engine(
            path,
            image=IMAGES[self.image],
            owner=owner,
            lease=LEASE,
            state=store,
            max_attempts=3,  # botocore's back-off sleeps in real time: keep bursts short
            autoload=False,
        )

    def store(self) -> SqliteStateStore:
        """The state store as an operator (or the monitor) opens it."""
        return SqliteStateStore(self.tmp / "state.db", PROJECT)

    def run(
        self,
        label: str,
        act: Callable[[Engine], Any],
        *,
        faults: bool = False,
        owner: str | None = None,
    ) -> Outcome:
        """Run one process: ``act(engine)``, with the armed faults when ``faults``."""
        engine = self.engine(owner=owner)
        if faults:
            for fault in self.armed:
                fault.arm(engine)
            self.armed = []
        try:
            with engine:
                value = act(engine)
        except Crash as crash:
            out = Outcome(label, "crash", error=str(crash))
        except Hung as hung:
            out = Outcome(label, "hung", error=str(hung))
        except ImmutableSdkError as exc:
            out = Outcome(label, "error", error=f"{type(exc).__name__}: {exc}")
        else:
            out = Outcome(label, "result", *_fleet_outcome(value))
        self.outcomes.append(out)
        return out

    def process(self, label: str, act: Callable[[Engine], Any], *, faults: bool = False) -> Outcome:
        """One process that may wait: what was scheduled "at wait N" happens during it."""
        self.waits, self._paused_at = 0, None
        self._seen_events = len(self.account.events)
        try:
            return self.run(label, act, faults=faults)
        finally:
            self.scheduled = []  # what was scheduled for this process and did not happen, lapses
            self._run_pending()  # a second process that took the lock runs on after the first

    def apply(self, label: str, *, faults: bool = False, abort_unfinished: bool = False) -> Outcome:
        return self.process(
            label, lambda e: e.apply(abort_unfinished=abort_unfinished), faults=faults
        )

    def after_lease(self) -> None:
        """Let every lease of a dead process expire (a resumer waits that long)."""
        self.clock.advance(LEASE + 1)

    # --- what happens while an apply waits -------------------------------------------------

    def schedule(self, at_wait: int, what: str, action: Callable[[], None]) -> None:
        self.scheduled.append(Scheduled(at_wait, what, action))

    def operator_signal(self, name: str) -> None:
        # No rollout in progress any more: the command says so and does nothing.
        with self.store() as state, suppress(ImmutableSdkError):
            signal_rollout(state, self.clock, FLEET, name)

    def intruder(self, how: str) -> None:
        """Another process takes the fleet over from the apply in progress.

        ``force-unlock``: an operator forces the lock open and a second apply takes it at
        once; the first runs on to its next wait, then the second runs (it is a process of
        its own: the first is stopped meanwhile, for a reproducible order). ``lease-expiry``:
        the first process is stopped past its lease; the second takes the expired lock and
        runs to its end before the first wakes up.
        """
        if how == "force-unlock":
            with self.store() as state:
                state.force_unlock(FLEET)
                self._processes += 1
                owner = f"intruder-{self._processes}"
                state.acquire_lock(FLEET, owner, LEASE, self.clock.now())
            self._pending.append(owner)
            self.schedule(self.waits + 1, "intruder", self._run_pending)
            return
        with self.stopped():
            self.after_lease()
            self._intrude(f"intruder after {how}", None)

    def _run_pending(self) -> None:
        while self._pending:
            owner = self._pending.pop(0)
            with self.stopped():
                self._intrude("intruder after force-unlock", owner)

    def _intrude(self, label: str, owner: str | None) -> None:
        saved, self.scheduled, waits = self.scheduled, [], self.waits
        try:
            self.run(label, lambda e: e.apply(), owner=owner)
        finally:
            self.scheduled, self.waits = saved, waits

    @contextmanager
    def stopped(self) -> Iterator[None]:
        with self.clock.stopped():
            yield

    def _during_wait(self) -> None:
        self.waits += 1
        if self.sampler is not None:
            self.sampler(f"wait {self.waits}")
        due = [s for s in self.scheduled if s.at_wait == self.waits]
        self.scheduled = [s for s in self.scheduled if s.at_wait != self.waits]
        for event in due:
            event.action()
        self._operator_at_manual_pause()
        if self.waits > MAX_WAITS:
            raise Hung(f"still waiting after {MAX_WAITS} waits")

    def _operator_at_manual_pause(self) -> None:
        """An operator answers a manual pause: promote, unless something scheduled will."""
        if self.strategy not in MANUAL:
            return
        events = self.account.events[self._seen_events :]
        if self._paused_at is None and any(e.kind == "rollout.paused" for e in events):
            self._paused_at = self.waits
        if self._paused_at is None or self.waits - self._paused_at < AUTO_PROMOTE_AFTER:
            return
        if any(s.what in ("promote", "abort") for s in self.scheduled):
            return
        self._paused_at = None
        self._seen_events = len(self.account.events)
        self.operator_signal("promote")


def _fleet_outcome(value: Any) -> tuple[str | None, str | None]:
    """(outcome, error) of the fleet in an ApplyResult or FleetResult."""
    fleets = getattr(value, "fleets", None)
    if fleets is not None:
        mine = [f for f in fleets if f.fleet == FLEET]
        value = mine[0] if mine else None
    if value is None:
        return None, None
    return getattr(value, "outcome", None), getattr(value, "error", None)
