"""What every deployer shares: the fleet's lock, the strategy, and how a rollout is recorded.

``BaseDeployer`` holds one region's collaborators and the parts of a rollout that do not
depend on how a fleet is rolled (``FleetDeployer`` in place, ``SlotDeployer`` through traffic
slots): the lock around the work, starting a rollout in the state store before anything
changes on AWS, a failure handled the same way (journaled, then rolled back or left
``failed``), and an outcome recorded only when AWS shows it (``promoted``, ``rolled_back``),
otherwise left unfinished for the next apply to finish.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...aws.fleet import FleetApi
from ...aws.slots import SlotGroups
from ...aws.traffic import TrafficApi
from ...clock import Clock
from ...errors import (
    AwsError,
    GateFailed,
    ImmutableSdkError,
    LockHeld,
    LockLost,
    PluginError,
    RolloutFailed,
    StateError,
    UsageError,
)
from ...lifecycle import Phase, Step
from ...plugin import RolloutInfo, Strategy
from ...plugins import Plugins
from ...release import Release, artifact_to_dict
from ...results import FleetResult
from ...spec.model import FleetSpec, Spec
from ...state.base import RolloutRecord, StateStore
from ..context import Context
from ..stopping import StopRequest
from ..tick.horizon import Suspended
from ..transitions import (
    ROLLBACK_STARTED,
    ROLLOUT_FINISHED,
    ROLLOUT_LEVEL,
    ROLLOUT_STARTED,
    journal_and_notify,
)
from .holds import quarantine_failure
from .locks import LockKeeper
from .serving import StillServing, group_serving, require_only, slots_serving

# What fails a rollout (and starts its rollback); anything else propagates and leaves the
# rollout unfinished for the next apply (a crash, an interruption, a lost lock).
FAILURES = (GateFailed, AwsError, PluginError, RolloutFailed, StateError, UsageError)


@dataclass
class BaseDeployer:
    spec: Spec
    plugins: Plugins
    ctx: Context
    fleets: FleetApi
    state: StateStore
    owner: str
    lease: float
    stop: StopRequest | None = None  # asks running rollouts to stop at their next safe point
    lock_wait: float = 0.0  # seconds to wait for a lock another rollout holds

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    def keeper(self, fleet: str) -> LockKeeper:
        return LockKeeper(
            self.state, fleet, self.owner, self.lease, self.ctx, stop=self.stop, wait=self.lock_wait
        )

    def locked(
        self, fleet: str, work: Callable[[LockKeeper], FleetResult], *, action: str = "-"
    ) -> FleetResult:
        """Run ``work`` holding the fleet's lock; ``work`` renews the lease through the keeper.

        A lock held by another rollout makes an ``locked`` result (or one that lost its lock
        midway, ``lock_lost``) instead of an error, so the other fleets of an apply go on. The
        lock is released when ``work`` ends, stops at a safe point (Interrupted) or a tick
        suspends it (a ``waiting`` result: the next tick, in any process, goes on); on any
        other exception (a crash, a second SIGINT) it is kept until its lease expires, since
        an AWS request may still be in flight.
        """
        if self.stop is not None:
            self.stop.check()
        keeper = self.keeper(fleet)
        try:
            keeper.acquire()
        except LockHeld as exc:
            # next_at: when the holder's lease ends, if it is not renewed (a tick whose worker
            # died is taken over then: see core.orchestrator.reconcile_tick)
            return FleetResult(fleet, action, "locked", error=str(exc), next_at=exc.lease_until)
        try:
            result = work(keeper)
        except Suspended as exc:  # a tick stopped at a safe point: any process goes on
            keeper.release()
            return FleetResult(
                fleet,
                action,
                # a rollback's wait: the rollout failed in this tick, the next finishes it
                "rolling_back" if exc.rolling_back else "waiting",
                *exc.releases,
                rollout=exc.rollout,
                waiting_for=exc.waiting_for,
                next_at=exc.next_at,
                step=exc.step,
            )
        except LockLost as exc:
            keeper.abandon()
            return FleetResult(fleet, action, "lock_lost", error=str(exc))
        except ImmutableSdkError:
            keeper.release()
            raise
        except BaseException:
            keeper.abandon()
            raise
        keeper.release()
        return result

    def strategy(self, fleet: FleetSpec) -> Strategy:
        return self.plugins.strategies.get(fleet.strategy.type).create(fleet.strategy.config)

    def begin_rollback(self, info: RolloutInfo, reason: str) -> None:
        """Record that the rollout rolls back, and why (notified once: by the process that
        journals it)."""
        self.state.update_rollout(info.id, phase=Phase.ROLLING_BACK.value, error=reason)
        journal_and_notify(  # notified only by the process that journals it (transitions)
            self.state,
            self.plugins.hook,
            info,
            ROLLOUT_LEVEL,
            ROLLBACK_STARTED,
            self.clock.now(),
            {"reason": reason},
            "immutable_sdk_rollback_started",
            reason=reason,
        )

    def end(self, rollout: str, info: RolloutInfo, phase: Phase, error: str | None) -> None:
        """Record the rollout's outcome. ``promoted`` and ``rolled_back`` only when AWS shows
        that the promoted (or restored) release alone serves the fleet; otherwise nothing is
        recorded and StillServing is raised: the rollout stays unfinished."""
        if phase in (Phase.PROMOTED, Phase.ROLLED_BACK):
            release = info.to_release if phase is Phase.PROMOTED else info.from_release
            require_only(self.serving(info.fleet), release, phase.value)
        self.state.update_rollout(
            rollout,
            phase=phase.value,
            outcome=phase.value,
            error=error,
            finished_at=self.clock.now(),
        )
        self.ctx.scoped(fleet=info.fleet, rollout=rollout).emit(
            "rollout.finished", outcome=phase.value, error=error
        )
        journal_and_notify(  # notified only by the process that journals it (transitions)
            self.state,
            self.plugins.hook,
            info,
            ROLLOUT_LEVEL,
            ROLLOUT_FINISHED,
            self.clock.now(),
            {"outcome": phase.value},
            "immutable_sdk_rollout_finished",
            outcome=phase.value,
        )

    def promote(self, info: RolloutInfo, result: FleetResult) -> None:
        """Record the rollout ``promoted``; when another release still serves (or AWS cannot
        tell), record nothing: the rollout stays unfinished (phase ``verifying``) and the next
        apply finishes it (a rolling fleet resumes it from what runs and retires the rest)."""
        try:
            self.end(info.id, info, Phase.PROMOTED, None)
        except (StillServing, AwsError) as exc:
            self.state.update_rollout(info.id, phase=Phase.VERIFYING.value, error=str(exc))
            self.ctx.scoped(fleet=info.fleet, rollout=info.id).emit(
                "rollout.unfinished", error=str(exc)
            )
            result.outcome = "failed"
            result.error = f"{exc}; the rollout stays unfinished: run apply again to finish it"

    def serving(self, fleet: str) -> dict[str, list[str]]:
        """Release -> instances that serve ``fleet`` now, read from AWS (``serving``)."""
        spec = self.spec.fleets.get(fleet)
        if spec is not None and spec.traffic:
            routes = TrafficApi(self.ctx.session, self.clock)
            return slots_serving(SlotGroups(self.fleets), routes, spec)
        return group_serving(self.fleets, fleet)

    def settle_rollback(
        self,
        info: RolloutInfo,
        result: FleetResult,
        reason: str,
        previous: str | None,
        error: ImmutableSdkError | None,
    ) -> None:
        """Record how a rollback ended: rolled back to ``previous`` (when AWS shows that release
        alone serving), or not finished because of ``error`` (see ``rollback_unfinished``)."""
        if error is None:
            try:
                self.end(info.id, info, Phase.ROLLED_BACK, reason)
            except (StillServing, AwsError) as exc:
                error = exc
        if error is not None:
            self.rollback_unfinished(info, result, reason, previous, error)
            return
        result.outcome = "rolled_back"
        result.rolled_back_to = previous

    def rollback_unfinished(
        self,
        info: RolloutInfo,
        result: FleetResult,
        reason: str,
        previous: str | None,
        error: ImmutableSdkError,
    ) -> None:
        """A rollback that could not finish leaves its rollout unfinished, never ``failed``:
        phase ``rolling_back``, its error still the failure that started the rollback, and
        why the rollback stopped in its data (``rollback_error``) and journal. ``status``
        shows it; the next ``apply`` finishes the rollback (never the roll forward)."""
        now = self.clock.now()
        record = self.state.get_rollout(info.id)
        data = dict(record.data) if record else {}
        attempts = int(data.get("rollback_attempts", 0)) + 1
        data.update(rollback_error=str(error), rollback_stopped_at=now, rollback_attempts=attempts)
        self.state.update_rollout(info.id, phase=Phase.ROLLING_BACK.value, error=reason, data=data)
        self.state.append_journal(
            info.id, -1, "note", now, {"note": "rollback_unfinished", "error": str(error)}
        )
        back = f"release {previous}" if previous else "no fleet (undoing its creation)"
        result.outcome = "rollback_unfinished"
        result.error = (
            f"{reason}; the rollback to {back} did not finish: {error}; the rollout stays "
            "unfinished (immutable-sdk status shows it): run apply again to finish the rollback"
        )
        self.ctx.scoped(fleet=info.fleet, rollout=info.id).emit(
            "rollback.unfinished", reason=reason, error=str(error), to_release=previous
        )

    def delete_failed_version(self, fleet: str, failed: str, previous: str | None) -> None:
        """Delete the failed release's launch template versions (never version 1, AWS's
        default, and never when the "failed" release is the one restored)."""
        if failed == previous:
            return
        versions = [v for v in self.fleets.versions_of_release(fleet, failed) if v != 1]
        self.fleets.delete_versions(fleet, versions)

    def announce(
        self, info: RolloutInfo, action: str, steps: Sequence[Step], **detail: Any
    ) -> None:
        """Tell the event sink and the plugins that the rollout ``info`` starts its steps."""
        self.ctx.scoped(fleet=info.fleet, rollout=info.id).emit(
            "rollout.started",
            action=action,
            from_release=info.from_release,
            to_release=info.to_release,
            steps=[s.describe() for s in steps],
            **detail,
        )
        journal_and_notify(  # notified only by the process that journals it (transitions)
            self.state,
            self.plugins.hook,
            info,
            ROLLOUT_LEVEL,
            ROLLOUT_STARTED,
            self.clock.now(),
            {"action": action},
            "immutable_sdk_rollout_started",
        )

    def fail(
        self,
        fleet: FleetSpec,
        info: RolloutInfo,
        result: FleetResult,
        keeper: LockKeeper,
        exc: Exception,
        roll_back: Callable[[], None],
        *,
        action: str,
        force: bool = False,
    ) -> None:
        """A rollout that failed with ``exc``: reported, then rolled back through ``roll_back``;
        with ``rollback: {automatic: false}`` (and not ``force``, an operator's abort) it ends
        ``failed`` and everything is left as it is for a person.

        A release its gates (or an operator's abort) judged bad is quarantined first
        (``holds.quarantine_failure``; ``action``: the plan's action, a ``rollback`` to a
        known release quarantines nothing), rolled back or not: the next apply leaves it out.

        The lock is checked first: a rollout whose lock was lost meanwhile is someone else's
        to roll back (LockLost propagates and the rollout stays unfinished).
        """
        keeper.check()
        quarantine_failure(self.state, info, action, exc, self.clock.now())
        result.error = str(exc)
        if isinstance(exc, GateFailed):
            result.failed_instances = dict(exc.details)
        ctx = self.ctx.scoped(fleet=info.fleet, rollout=info.id)
        ctx.emit("rollout.failed", error=str(exc), details=result.failed_instances)
        if not (fleet.rollback_automatic or force):
            result.outcome = "failed"
            self.end(info.id, info, Phase.FAILED, str(exc))
            return
        roll_back()

    def succeed(self, info: RolloutInfo, result: FleetResult, keeper: LockKeeper) -> None:
        """The steps are done: record ``promoted`` while the lock is still ours (``promote``)."""
        keeper.check()
        self.promote(info, result)


def record_release(state: StateStore, info: RolloutInfo, release: Release, now: float) -> None:
    """Keep the release a rollout deploys (idempotent: the same release is recorded once)."""
    state.record_release(
        info.fleet,
        release.id,
        artifact_to_dict(release.artifact),
        dict(release.launch_config),
        now,
        info.id,
    )


START_TICK = 0.001  # seconds a rollout starts after one that started at the same clock reading


def start_rollout(
    state: StateStore,
    info: RolloutInfo,
    release: Release,
    steps: Sequence[Step],
    owner: str,
    now: float,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Record the release and a new rollout to it, before anything changes on AWS.

    A rollout starts after the fleet's newest one, even within the same clock reading (an
    operator's rollback and the next apply in one second, or on a virtual clock): stores list
    rollouts newest first by start time, and ``status``, ``history`` and resuming rely on it.
    """
    record_release(state, info, release, now)
    newest = state.rollouts(info.fleet, limit=1)
    if newest and newest[0].started_at >= now:
        now = newest[0].started_at + START_TICK
    state.start_rollout(
        RolloutRecord(
            id=info.id,
            fleet=info.fleet,
            strategy=info.strategy,
            from_release=info.from_release,
            to_release=info.to_release,
            phase=Phase.PROVISIONING.value,
            started_at=now,
            owner=owner,
            steps=tuple(s.to_dict() for s in steps),
            data=dict(data or {}),
        )
    )
