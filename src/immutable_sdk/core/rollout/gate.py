"""Gates and bakes: poll a fleet's health checks until a verdict, through the clock.

A gate ends healthy (every check healthy), unhealthy (any check says so: the release is bad)
or timed out. A bake watches the same checks for a fixed time and fails on the first unhealthy
verdict. Each gate or bake instantiates the checks afresh, so checks can count consecutive
results. One poll asks every check once about every target: checks batch their own calls.

Waiting on a check never starves the lease. A poll runs on a thread of its own while the
rollout's thread (the one holding the fleet's lock, whose state store connection and fence are
its own) waits for it in pieces of at most a second, calling the heartbeat between them: the
lease is renewed and stop requests are honoured however long the checks' I/O takes. Checks bound
their own requests (the ``http`` check's ``request_timeout`` covers a whole probe), so a gate
ends within its timeout plus one poll; a check that does not return at all is given up on
``POLL_GRACE`` seconds after the gate's time is up, and the gate fails.

A rollback (or any return to a known-good release) is gated differently: see ``restoring``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from ...aws.session import aws_errors
from ...coalesce import reads_fresh_since
from ...errors import GateFailed, ImmutableSdkError, PluginError
from ...plugin import (
    GateTargets,
    HealthCheck,
    HealthCheckFactory,
    HealthReport,
    HealthStatus,
    PluginContext,
    Registry,
)
from ...spec.model import HealthSpec, PluginConfig
from ...units import format_duration
from ..tick.horizon import Horizon
from .locks import STOP_POLL

Heartbeat = Callable[[], None]
POLL_GRACE = 30.0  # seconds a poll may outlast its gate or bake before it is given up on
T = TypeVar("T")


class _Background(Generic[T]):
    """``work`` on a daemon thread (a hung check must not keep the process alive)."""

    def __init__(self, work: Callable[[], T], name: str) -> None:
        self._work = work
        self._done = threading.Event()
        self._result: T | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        try:
            self._result = self._work()
        except BaseException as exc:  # handed to the waiting thread
            self._error = exc
        finally:
            self._done.set()

    def wait(self, limit: float, heartbeat: Heartbeat) -> tuple[bool, T | None]:
        """Wait up to ``limit`` real seconds, beating between pieces; (finished, result).

        The wait is in real time, not on the engine's clock: the work is real I/O, and a
        virtual clock stands still while it runs.
        """
        end = time.monotonic() + limit
        while not self._done.wait(min(max(end - time.monotonic(), 0.0), STOP_POLL)):
            heartbeat()
            if time.monotonic() >= end:
                return False, None
        if self._error is not None:
            raise self._error
        return True, self._result


# The checks that judge the infrastructure health of the very instances they are given, and
# nothing else: EC2 status checks and load balancer target health. Every other check (alarms,
# http probes of the application, metrics, third-party checks) may judge the release as a
# whole, or a signal the failed release set off and that outlives it.
INSTANCE_CHECKS = ("ec2", "elb")


def restoring(health: HealthSpec) -> HealthSpec:
    """The health settings that gate a return to a known-good release (a rollback, a resumed
    rollback, ``immutable-sdk rollback``): only ``INSTANCE_CHECKS``, each with the settings
    the spec gives it, or its defaults when the spec does not list it.

    A signal that judged the new release (a ``cloudwatch-alarm`` still in ALARM, an ``http``
    check of the application, a canary analysis) must never block the way back: it would keep
    the failed release serving. Timeout, interval and grace stay the fleet's.
    """
    kept = [c for c in health.checks if c.type in INSTANCE_CHECKS]
    listed = {c.type for c in kept}
    added = [PluginConfig(t, {"type": t}) for t in INSTANCE_CHECKS if t not in listed]
    return replace(health, checks=(*kept, *added))


TICK_SLACK = 1e-6  # seconds: clock arithmetic's rounding, never a real difference


def tick_start(now: float, interval: float) -> float:
    """The last multiple of ``interval`` on the clock at or before ``now``."""
    if interval <= 0:
        return now
    return math.floor(now / interval + TICK_SLACK) * interval


def until_next_tick(now: float, interval: float) -> float:
    """Seconds from ``now`` to the next multiple of ``interval`` on the clock (at most one
    interval, never zero): the poll instants that bakes of different fleets have in common."""
    if interval <= 0:
        return 0.0
    return tick_start(now, interval) + interval - now


@dataclass
class GateRunner:
    health: HealthSpec
    registry: Registry[HealthCheckFactory]
    ctx: PluginContext
    heartbeat: Heartbeat = lambda: None
    horizon: Horizon | None = None  # a reconcile tick's budget: gates poll only within it

    def checks(self) -> list[tuple[str, HealthCheck]]:
        """Fresh check objects for one gate or bake, named as reports name them (a gate
        suspended by one process gets them back with ``gate_progress.GateProgress.restore``)."""
        return self._checks()

    def _checks(self) -> list[tuple[str, HealthCheck]]:
        checks = []
        types = [cfg.type for cfg in self.health.checks]
        for i, cfg in enumerate(self.health.checks):
            entry = self.registry.get(cfg.type)
            # Name a check by its type; number it only when the type appears twice.
            name = cfg.type if types.count(cfg.type) == 1 else f"{cfg.type}#{i + 1}"
            checks.append((name, entry.create(cfg.config)))
        return checks

    def _poll(
        self,
        checks: list[tuple[str, HealthCheck]],
        targets: GateTargets,
        left: float,
        since: float | None = None,
    ) -> dict[str, HealthReport]:
        """Ask every check once, on a thread of its own, heartbeating while it runs.

        ``left`` is the time the gate or bake has left; the poll is given up on (GateFailed)
        ``POLL_GRACE`` seconds after that. ``since``: the checks' shared reads made at that
        clock time or later serve this poll (``reads_fresh_since``); None: read afresh.
        """
        limit = max(left, 0.0) + POLL_GRACE

        def ask() -> dict[str, HealthReport]:
            if since is None:
                return self._ask(checks, targets)
            with reads_fresh_since(since, self.ctx.clock.monotonic(), self.health.interval):
                return self._ask(checks, targets)

        poll = _Background(ask, name=f"health-{targets.fleet}")
        finished, reports = poll.wait(limit, self.heartbeat)
        if not finished or reports is None:
            names = ", ".join(name for name, _ in checks)
            raise GateFailed(
                f"health check(s) {names} did not answer within {format_duration(limit)}",
                checks=tuple(name for name, _ in checks),
            )
        self.ctx.emit(
            "gate.poll",
            release=targets.release,
            instances=len(targets.instances),
            checks={n: r.status.value for n, r in reports.items()},
            details={n: dict(r.details) for n, r in reports.items() if r.details},
            seconds_left=max(left, 0.0),  # a terminal's live view counts it down
        )
        return reports

    def _ask(
        self, checks: list[tuple[str, HealthCheck]], targets: GateTargets
    ) -> dict[str, HealthReport]:
        reports = {}
        for name, check in checks:
            try:
                with aws_errors(f"health check {name}"):
                    reports[name] = check.check(targets, self.ctx)
            except ImmutableSdkError:
                raise
            except Exception as exc:
                raise PluginError(name, f"health check raised {exc!r}") from exc
        return reports

    @staticmethod
    def _failure(reports: dict[str, HealthReport], prefix: str) -> GateFailed | None:
        bad = {n: r for n, r in reports.items() if r.status is HealthStatus.UNHEALTHY}
        if not bad:
            return None
        details: dict[str, str] = {}
        for name, report in bad.items():
            for key, text in report.details.items():
                details[key] = f"{name}: {text}"
        what = "; ".join(f"{n}: {r.summary or 'unhealthy'}" for n, r in bad.items())
        return GateFailed(f"{prefix}: {what}", details=details, checks=tuple(bad))

    def gate(
        self,
        targets: Callable[[], GateTargets],
        checks: list[tuple[str, HealthCheck]] | None = None,
        *,
        elapsed: float = 0.0,
    ) -> dict[str, HealthReport]:
        """Poll until every check is healthy; raise GateFailed when unhealthy or timed out.

        ``checks``: ones from ``checks()`` (restored from an earlier tick's progress); None:
        fresh ones. ``elapsed``: seconds an earlier tick polled this gate already (its timeout
        counts from then). Within a reconcile tick, a wait that would outlast the tick's budget
        suspends the gate instead (``Suspended``, with the gate's start as ``gate_since``).
        """
        clock = self.ctx.clock
        checks = self._checks() if checks is None else checks
        start = clock.monotonic() - max(elapsed, 0.0)
        while True:
            self.heartbeat()
            left = self.health.timeout - (clock.monotonic() - start)
            reports = self._poll(checks, targets(), left)
            failure = self._failure(reports, "health gate failed")
            if failure:
                raise failure
            if all(r.status is HealthStatus.HEALTHY for r in reports.values()):
                return reports
            elapsed = clock.monotonic() - start
            if elapsed >= self.health.timeout:
                pending = {
                    n: r.summary or "pending"
                    for n, r in reports.items()
                    if r.status is HealthStatus.PENDING
                }
                details = {
                    k: f"{n}: {v}"
                    for n, r in reports.items()
                    if r.status is HealthStatus.PENDING
                    for k, v in r.details.items()
                }
                raise GateFailed(
                    f"health gate timed out after {format_duration(self.health.timeout)}; "
                    + "; ".join(f"{n}: {s}" for n, s in pending.items()),
                    details=details,
                    checks=tuple(pending),
                )
            pause = min(self.health.interval, self.health.timeout - elapsed)
            if self.horizon is not None:
                began = clock.now() - elapsed
                self.horizon.poll(clock, pause, "gate", gate_since=began)
            clock.sleep(pause)

    def bake(
        self,
        seconds: float,
        targets: Callable[[], GateTargets],
        checks: list[tuple[str, HealthCheck]] | None = None,
        elapsed: float = 0.0,
    ) -> None:
        """Watch the checks for ``seconds``; raise GateFailed on the first unhealthy verdict.

        Polls at once, then on the clock's ticks of ``health.interval`` (``until_next_tick``),
        so no two polls are more than one interval apart and the bakes of every fleet with the
        same interval poll at the same instants. After the first poll (read afresh), a poll
        takes shared reads made since its tick began (``reads_fresh_since``): fleets baking
        together read their groups, alarms, target groups and instance statuses once a tick,
        not once each, and no read a poll judges is older than the tick it polls in.
        """
        clock = self.ctx.clock
        checks = self._checks() if checks is None else checks
        begun = clock.monotonic()
        start = begun - max(elapsed, 0.0)  # ``elapsed``: as for ``gate``
        while True:
            self.heartbeat()
            now = clock.monotonic()
            left = seconds - (now - start)
            # The first poll reads afresh: this fleet's own steps just changed what it reads,
            # maybe at this very instant (a virtual clock stands still while steps run), after
            # another fleet read it. Later ones, on ticks after the bake began, share what was
            # read since their tick began.
            since = tick_start(now, self.health.interval)
            if since > begun:
                with reads_fresh_since(since, now, self.health.interval):
                    watched = targets()
                reports = self._poll(checks, watched, left, since=since)
            else:
                reports = self._poll(checks, targets(), left)
            failure = self._failure(reports, "failed during bake")
            if failure:
                raise failure
            remaining = seconds - (clock.monotonic() - start)
            if remaining <= 0:
                return
            clock.sleep(min(until_next_tick(clock.monotonic(), self.health.interval), remaining))
