"""Rolling one fleet to a release: lock, launch template version, strategy steps, rollback.

``FleetDeployer`` does for one fleet what ``Engine.apply`` asks: create, replace, scale or
destroy it, under the fleet's lock, with the rollout journaled in the state store and rolled
back by the same mechanism when a gate fails.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import replace as replace_field
from typing import Any

from ...aws import scaling
from ...aws.fleet import SUSPENDED_DURING_ROLLOUT, FleetApi, GroupState
from ...aws.slots import SlotGroups
from ...aws.traffic import TrafficApi
from ...clock import Clock
from ...errors import (
    AwsError,
    GateFailed,
    ImmutableSdkError,
    Interrupted,
    LockHeld,
    LockLost,
    PluginError,
    RolloutFailed,
    StateError,
    UsageError,
)
from ...lifecycle import Phase, Step
from ...plugin import (
    TAG_RELEASE,
    Artifact,
    RolloutChange,
    RolloutInfo,
    Strategy,
)
from ...plugins import Plugins
from ...release import Release
from ...results import FleetResult
from ...spec.model import FleetSpec, Spec
from ...state.base import RolloutRecord, StateStore
from ..context import Context
from ..planner import PlanItem, Planner
from ..stopping import StopRequest
from . import resume
from .gate import restoring
from .holds import quarantine_failure
from .locks import LockKeeper
from .runner import (
    RolloutRunner,
    capacity_bounds,
    new_rollout_id,
    to_replace,
)
from .serving import (
    StillServing,
    group_serving,
    require_only,
    slots_serving,
)


@dataclass
class FleetDeployer:
    spec: Spec
    plugins: Plugins
    ctx: Context
    fleets: FleetApi
    state: StateStore
    planner: Planner
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
        lock is released when ``work`` ends or stops at a safe point (Interrupted); on any
        other exception (a crash, a second SIGINT) it is kept until its lease expires, since
        an AWS request may still be in flight.
        """
        if self.stop is not None:
            self.stop.check()
        keeper = self.keeper(fleet)
        try:
            keeper.acquire()
        except LockHeld as exc:
            return FleetResult(fleet, action, "locked", error=str(exc))
        try:
            result = work(keeper)
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

    def destroy(self, item: PlanItem, keeper: LockKeeper) -> FleetResult:
        self.ctx.scoped(fleet=item.fleet).emit("fleet.destroying", fleet=item.fleet)
        self.fleets.delete_group(item.fleet)
        return FleetResult(item.fleet, "destroy", "destroyed", item.current_release)

    def scale(self, fleet: FleetSpec, item: PlanItem, keeper: LockKeeper) -> FleetResult:
        cap = fleet.capacity
        ctx = self.ctx.scoped(fleet=fleet.name)
        group = self.fleets.describe_one(fleet.name)
        desired = cap.wanted(group.desired if group else None)
        ctx.emit("fleet.scaling", min=cap.min, desired=desired, max=cap.max)
        self.fleets.update_group(fleet.name, min_size=cap.min, desired=desired, max_size=cap.max)
        if cap.managed:
            scaling.sync(self.fleets, fleet)
        if group is not None and group.suspended & set(SUSPENDED_DURING_ROLLOUT):
            self.fleets.resume(fleet.name)  # what a stopped rollout left suspended
        return FleetResult(fleet.name, "scale", "scaled", item.current_release, item.release)

    def strategy(self, fleet: FleetSpec) -> Strategy:
        entry = self.plugins.strategies.get(fleet.strategy.type)
        try:
            return entry.factory(fleet.strategy.config)
        except ImmutableSdkError:
            raise
        except Exception as exc:
            raise PluginError(
                entry.plugin,
                f"strategy {fleet.strategy.type!r} failed to start: {exc!r}",
                distribution=entry.distribution,
            ) from exc

    def roll(
        self,
        fleet: FleetSpec,
        release: Release,
        action: str,
        keeper: LockKeeper,
        *,
        replace: frozenset[str] = frozenset(),
        abort_unfinished: bool = False,
    ) -> FleetResult:
        """Roll ``fleet`` to ``release`` through its strategy; roll back on failure.

        ``replace``: instances to replace even though they run ``release`` (drift, lifetime).

        An unfinished rollout of the fleet (its process died, was interrupted or lost the
        lock) comes first (resume.py): resumed when it was rolling out ``release``; superseded
        by this rollout, which starts from what runs, when the spec now wants another release;
        rolled back when ``abort_unfinished`` or when it was rolling back already. A fleet that
        another rollout brought to ``release`` meanwhile is a noop (no rollout twice).
        """
        pending = resume.unfinished(self.state, fleet.name)
        if pending and (abort_unfinished or pending[0].phase == Phase.ROLLING_BACK.value):
            if abort_unfinished:
                reason, requested = "aborted by apply --abort-unfinished", True
            else:  # it failed and was rolling back: finish that
                reason, requested = pending[0].error or "the rollout was rolling back", False
            return self.abort(
                fleet, pending[0], keeper, reason=reason, action=action, requested=requested
            )
        now = self.clock.now()
        group = self.fleets.describe_one(fleet.name)
        desired = rollout_desired(fleet, group, pending)
        if not pending and self.up_to_date(fleet, group, release.id, replace):
            return FleetResult(fleet.name, action, "noop", release.id, release.id)
        resumed = pending[0] if pending and pending[0].to_release == release.id else None
        rollout_id = resumed.id if resumed else new_rollout_id(now)
        ctx = self.ctx.scoped(fleet=fleet.name, rollout=rollout_id)
        # A resumed or superseded rollout keeps the release that was promoted before it.
        previous = pending[0].from_release if pending else group.release if group else None
        steps = (
            [] if pending else self.plan_steps(fleet, release.id, previous, group, replace, desired)
        )
        info = RolloutInfo(
            id=rollout_id,
            project=self.spec.name,
            fleet=fleet.name,
            strategy=fleet.strategy.type,
            from_release=previous,
            to_release=release.id,
            region=self.ctx.region,
        )
        carried = resume.Carried.read(self.state, pending)  # before writing: it may be damaged
        if resumed:
            record_release(self.state, info, release, now)
            self.state.update_rollout(rollout_id, owner=self.owner, phase=Phase.PROVISIONING)
        else:
            start_rollout(self.state, info, release, steps, self.owner, now, {"desired": desired})
        if pending:
            how = "resumed" if resumed else "superseded"
            resume.take_over(self.state, rollout_id, pending, carried, self.owner, now, how)
            ctx.emit("rollout.resumed", how=how, rollouts=[r.id for r in pending])

        def started() -> None:
            ctx.emit(
                "rollout.started",
                action=action,
                from_release=previous,
                to_release=release.id,
                steps=[s.describe() for s in steps],
            )
            self.plugins.hook.immutable_sdk_rollout_started(rollout=info)

        if not pending:
            started()
        runner = RolloutRunner(
            fleet=fleet,
            plugins=self.plugins,
            ctx=replace_field(ctx, clock=keeper.clock),
            api=self.fleets,
            state=self.state,
            info=info,
            heartbeat=keeper,
            target=release.id,
            trusted=previous,
            replace=replace,
            gated=set(carried.gated),
            launched_before=set(carried.launched),
            original=carried.originals(),
            index=carried.next_index(resumed) if resumed else 0,
            desired=desired,
            # ``immutable-sdk rollback`` (and a wave's rollback) returns to a known-good
            # release: gated like a rollback, on the instances' own health only.
            restoring=action == "rollback",
        )
        result = FleetResult(fleet.name, action, "promoted", previous, release.id, rollout_id)
        superseded = {r.to_release for r in pending}  # their launch template versions go
        try:
            version = self.fleets.ensure_version(fleet, release, rollout_id)
            runner.note(version=version, release=release.id)
            if pending:
                releases = {previous, release.id, *(r.to_release for r in pending)}
                group = resume.reconcile(runner, carried, releases)
                steps = resume.resume_steps(
                    self.plan_steps(fleet, release.id, previous, group, replace, desired),
                    group,
                    runner,
                )
                planned = [*(resumed.steps if resumed else ()), *(s.to_dict() for s in steps)]
                self.state.update_rollout(rollout_id, steps=planned)
                started()
            start = len(group.live()) if group else 0
            low, high = capacity_bounds(desired, steps, group.desired if group else 0)
            if group is None:
                self.fleets.create_group(
                    fleet,
                    version,
                    subnets=release.launch_config["subnets"],
                    target_groups=release.launch_config["target_groups"],
                    release=release.id,
                    max_size=max(high, fleet.capacity.max),
                )
            else:
                # Journaled first: whoever finishes the rollout (this process, a resumer,
                # the planner's scale) resumes what a rollout suspended.
                runner.note(suspending=sorted(set(SUSPENDED_DURING_ROLLOUT) - group.suspended))
                self.fleets.suspend(fleet.name)
                self.fleets.update_group(
                    fleet.name,
                    version=version,
                    min_size=min(fleet.capacity.min, low),
                    max_size=max(high, fleet.capacity.max, start),
                )
            self.state.update_rollout(rollout_id, phase=Phase.SHIFTING.value)
            runner.run(steps)
            self.finish(fleet, release.id, desired)
            resume.drop_unused_versions(runner, superseded, keep={release.id, previous})
        except (GateFailed, AwsError, PluginError, RolloutFailed, StateError, UsageError) as exc:
            keeper.check()  # a lock lost meanwhile: the rollout is someone else's to roll back
            quarantine_failure(self.state, info, action, exc, self.clock.now())
            result.error = str(exc)
            if isinstance(exc, GateFailed):
                result.failed_instances = dict(exc.details)
            ctx.emit("rollout.failed", error=str(exc), details=result.failed_instances)
            if not fleet.rollback_automatic:
                result.outcome = "failed"
                self.end(rollout_id, info, Phase.FAILED, str(exc))
                return self._with_runner(result, runner)
            self.roll_back(fleet, info, runner, previous, release.id, str(exc), result)
            if result.outcome == "rolled_back":
                resume.drop_unused_versions(runner, superseded, keep={previous})
            return self._with_runner(result, runner)
        keeper.check()
        self.promote(info, result)
        return self._with_runner(result, runner)

    def plan_steps(
        self,
        fleet: FleetSpec,
        target: str,
        previous: str | None,
        group: GroupState | None,
        replace: frozenset[str],
        desired: int | None = None,
    ) -> list[Step]:
        """The strategy's steps from what runs now (instances on ``target`` count as done),
        to ``desired`` instances (default: the capacity the spec wants for the group)."""
        stale = len(to_replace(group, target, replace)) if group else 0
        if desired is None:
            desired = fleet.capacity.wanted(group.desired if group else None)
        change = RolloutChange(
            fleet=fleet,
            new_release=target,
            current_release=previous,
            current_instances=stale,
            desired=desired,
            target_instances=len(group.live()) - stale if group else 0,
        )
        return self.strategy(fleet).plan(change)

    @staticmethod
    def up_to_date(
        fleet: FleetSpec, group: GroupState | None, release: str, replace: frozenset[str]
    ) -> bool:
        """Whether the fleet runs ``release`` exactly as the spec wants (nothing to roll)."""
        if group is None or replace or group.release != release:
            return False
        cap = fleet.capacity
        desired = cap.wanted(group.desired)
        return (
            not to_replace(group, release)
            and len(group.live()) == desired
            and (group.min, group.desired, group.max) == (cap.min, desired, cap.max)
            and not group.suspended & set(SUSPENDED_DURING_ROLLOUT)
        )

    def abort(
        self,
        fleet: FleetSpec,
        record: RolloutRecord,
        keeper: LockKeeper,
        *,
        reason: str,
        action: str = "abort",
        requested: bool = True,
    ) -> FleetResult:
        """Roll an unfinished rollout back to the release it started from (or remove the fleet
        it was creating), by the same mechanism as a failed gate (see ``resume.abort``)."""
        return resume.abort(
            self, fleet, record, keeper, reason=reason, action=action, requested=requested
        )

    @staticmethod
    def _with_runner(result: FleetResult, runner: RolloutRunner) -> FleetResult:
        result.launched = list(runner.launched)
        result.retired = list(runner.retired)
        return result

    def finish(self, fleet: FleetSpec, release: str, desired: int | None = None) -> None:
        """The group as the spec wants it after a rollout: bounds, ``desired`` (what the
        rollout aimed for: with ``desired: managed`` the live value at its start), release
        tag, scaling policies, and the processes the rollout suspended resumed."""
        cap = fleet.capacity
        self.fleets.update_group(
            fleet.name,
            min_size=cap.min,
            desired=cap.desired if desired is None else desired,
            max_size=cap.max,
        )
        self.fleets.tag_group(fleet.name, {TAG_RELEASE: release})
        if cap.managed:
            scaling.sync(self.fleets, fleet)
        self.fleets.resume(fleet.name)

    def serving(self, fleet: str) -> dict[str, list[str]]:
        """Release -> instances that serve ``fleet`` now, read from AWS (serving.py)."""
        spec = self.spec.fleets.get(fleet)
        if spec is not None and spec.traffic:
            routes = TrafficApi(self.ctx.session, self.clock)
            return slots_serving(SlotGroups(self.fleets), routes, spec)
        return group_serving(self.fleets, fleet)

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
        self.plugins.hook.immutable_sdk_rollout_finished(rollout=info, outcome=phase.value)

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

    def roll_back(
        self,
        fleet: FleetSpec,
        info: RolloutInfo,
        runner: RolloutRunner,
        previous: str | None,
        failed: str,
        reason: str,
        result: FleetResult,
    ) -> None:
        """Back to ``previous`` by the same mechanism: replace, never patch."""
        ctx = runner.ctx
        self.state.update_rollout(info.id, phase=Phase.ROLLING_BACK.value, error=reason)
        runner.restoring = True  # the signal that failed the release must not block the way back
        checks = [c.type for c in restoring(fleet.health).checks]
        ctx.emit("rollback.started", reason=reason, to_release=previous, checks=checks)
        self.plugins.hook.immutable_sdk_rollback_started(rollout=info, reason=reason)
        try:
            if previous is None:
                # A fleet that never ran: rolling back means removing what this rollout made.
                self.fleets.delete_group(fleet.name)
            else:
                version = self.fleets.version_of_release(fleet.name, previous)
                if version is None:
                    raise RolloutFailed(
                        f"the launch template version of release {previous} is gone"
                    )
                self.fleets.update_group(fleet.name, version=version)
                group = self.fleets.describe_one(fleet.name)
                assert group is not None
                # Undoing a replacement within one release (drift fix, recycle) retires what
                # it launched and keeps the instances it was replacing.
                runner.replace = frozenset(runner.launched if failed == previous else ())
                change = RolloutChange(
                    fleet=fleet,
                    new_release=previous,
                    current_release=failed,
                    current_instances=len(to_replace(group, previous, runner.replace)),
                    desired=runner.capacity(),
                    target_instances=len(group.live())
                    - len(to_replace(group, previous, runner.replace)),
                    rollback=True,
                )
                runner.target = previous
                runner.trusted = previous
                runner.rolling_back = True
                runner.run(self.strategy(fleet).plan(change))
                self.finish(fleet, previous, runner.capacity())
                self.delete_failed_version(fleet.name, failed, previous)
        except (Interrupted, LockLost):
            raise  # the rollout stays unfinished (still rolling back): a resume finishes it
        except ImmutableSdkError as exc:
            self.settle_rollback(info, result, reason, previous, exc)
            return
        self.settle_rollback(info, result, reason, previous, None)

    def delete_failed_version(self, fleet: str, failed: str, previous: str | None) -> None:
        """Delete the failed release's launch template versions (never version 1, AWS's
        default, and never when the "failed" release is the one restored)."""
        if failed == previous:
            return
        versions = [v for v in self.fleets.versions_of_release(fleet, failed) if v != 1]
        self.fleets.delete_versions(fleet, versions)

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


def rollout_desired(
    fleet: FleetSpec, group: GroupState | None, pending: Sequence[RolloutRecord]
) -> int:
    """The desired capacity a rollout aims for: what the spec wants for the group now, or
    with ``desired: managed`` the group's live desired (within min and max) before any launch
    of the rollout: what an unfinished rollout it continues recorded at its start, as the
    live value is inflated by that rollout's launches."""
    for record in pending if fleet.capacity.managed else ():
        recorded = record.data.get("desired")
        if isinstance(recorded, int) and not isinstance(recorded, bool):
            return recorded
    return fleet.capacity.wanted(group.desired if group else None)


def record_release(state: StateStore, info: RolloutInfo, release: Release, now: float) -> None:
    """Keep the release a rollout deploys (idempotent: the same release is recorded once)."""
    state.record_release(
        info.fleet,
        release.id,
        asdict_artifact(release.artifact),
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


def asdict_artifact(artifact: Artifact) -> dict[str, Any]:
    return {
        "image": artifact.image,
        "builder": artifact.builder,
        "digest": artifact.digest,
        "amis": dict(artifact.amis),
        "lineage": dict(artifact.lineage),
        "built": artifact.built,
    }
