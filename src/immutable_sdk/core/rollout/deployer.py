"""Rolling one fleet in place: launch template version, strategy steps, rollback.

``FleetDeployer`` does for a fleet without traffic slots what ``Engine.apply`` asks: create,
replace, scale or destroy it, under the fleet's lock, with the rollout journaled in the state
store and rolled back by the same mechanism when a gate fails. What it shares with the slot
deployer (lock, recording, failure handling) is in ``base``; the contract both keep is
``contract.Deployer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace as replace_field
from functools import partial
from typing import Any

from ...aws import scaling
from ...aws.fleet import SUSPENDED_DURING_ROLLOUT, GroupState
from ...errors import (
    AwsError,
    GateFailed,
    ImmutableSdkError,
    Interrupted,
    LockLost,
    PluginError,
    RolloutFailed,
    StateError,
    UsageError,
)
from ...lifecycle import Phase, Step
from ...plugin import TAG_RELEASE, RolloutChange, RolloutInfo
from ...release import Release
from ...results import FleetResult, PlanItem
from ...spec.model import FleetSpec
from ...state.base import RolloutRecord
from . import resume
from .base import FAILURES, BaseDeployer, record_release, start_rollout
from .gate import restoring
from .holds import quarantine
from .locks import LockKeeper
from .runner import RolloutRunner, capacity_bounds, new_rollout_id, to_replace


@dataclass
class FleetDeployer(BaseDeployer):
    """Rolls a fleet in place: one Auto Scaling group, instances replaced batch by batch."""

    def live_group(self, fleet: FleetSpec) -> GroupState | None:
        return self.fleets.describe_one(fleet.name)

    def status(self, fleet: FleetSpec) -> dict[str, Any]:
        return {}

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
        lock) comes first (``resume``): resumed when it was rolling out ``release``; superseded
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
        # Stopped inside a wait or a gate (a reconcile tick, or a process that died there):
        # that step goes on from its journaled start, then the rest of the planned steps.
        going_on = resume.continuation(self.state, resumed) if resumed else None
        if resumed:
            record_release(self.state, info, release, now)
            self.state.update_rollout(rollout_id, owner=self.owner, phase=Phase.PROVISIONING)
        else:
            start_rollout(self.state, info, release, steps, self.owner, now, {"desired": desired})
        if pending:
            how = "continued" if going_on else "resumed" if resumed else "superseded"
            resume.take_over(self.state, rollout_id, pending, carried, self.owner, now, how)
            ctx.emit("rollout.resumed", how=how, rollouts=[r.id for r in pending])

        if not pending:
            self.announce(info, action, steps)
        runner = self.runner(
            fleet,
            info,
            keeper,
            target=release.id,
            trusted=previous,
            replace=replace,
            gated=set(carried.gated),
            launched_before=set(carried.launched),
            original=carried.originals(),
            index=(going_on[0].index if going_on else carried.next_index(resumed))
            if resumed
            else 0,
            resumed=going_on[0] if going_on else None,
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
            if going_on is not None:
                steps = going_on[1]  # the group is as the step before left it
            elif pending:
                releases = {previous, release.id, *(r.to_release for r in pending)}
                group = resume.reconcile(runner, carried, releases)
                steps = resume.resume_steps(
                    self.plan_steps(fleet, release.id, previous, group, replace, desired),
                    group,
                    runner,
                )
                planned = [*(resumed.steps if resumed else ()), *(s.to_dict() for s in steps)]
                self.state.update_rollout(rollout_id, steps=planned)
                self.announce(info, action, steps)
            if going_on is None:
                provisioned = self.provision(fleet, release, version, group, steps, desired, runner)
                if provisioned is not None and not pending:
                    runner.start_from(provisioned)  # the first step needs no read of its own
            self.state.update_rollout(rollout_id, phase=Phase.REPLACING.value)  # no traffic moves
            runner.run(steps)
            self.finish(fleet, release.id, desired)
            resume.drop_unused_versions(runner, superseded, keep={release.id, previous})
        except FAILURES as exc:
            reason = str(exc)
            back = partial(self.roll_back, fleet, info, runner, previous, release.id)
            self.fail(fleet, info, result, keeper, exc, lambda: back(reason, result), action=action)
            if result.outcome == "rolled_back":
                resume.drop_unused_versions(runner, superseded, keep={previous})
            return self._with_runner(result, runner)
        self.succeed(info, result, keeper)
        return self._with_runner(result, runner)

    def runner(
        self, fleet: FleetSpec, info: RolloutInfo, keeper: LockKeeper, **options: Any
    ) -> RolloutRunner:
        """The runner of the rollout ``info``, on the lock keeper's clock (``options``:
        RolloutRunner's own fields)."""
        ctx = self.ctx.scoped(fleet=fleet.name, rollout=info.id)
        return RolloutRunner(
            fleet=fleet,
            plugins=self.plugins,
            ctx=replace_field(ctx, clock=keeper.clock),
            api=self.fleets,
            state=self.state,
            info=info,
            heartbeat=keeper,
            **options,
        )

    def provision(
        self,
        fleet: FleetSpec,
        release: Release,
        version: int,
        group: GroupState | None,
        steps: Sequence[Step],
        desired: int,
        runner: RolloutRunner,
    ) -> GroupState | None:
        """The group the steps run in: created on the release's launch template version, or
        moved to it, with scaling processes suspended and bounds wide enough for the steps
        to ``desired`` instances (``rollout_desired``; ``finish`` restores the spec's bounds).
        Returns the existing group as these calls left it, when that is known without
        reading it again (None: read it)."""
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
            return None
        # Journaled first: whoever finishes the rollout (this process, a resumer, the
        # planner's scale) resumes what a rollout suspended.
        runner.note(suspending=sorted(set(SUSPENDED_DURING_ROLLOUT) - group.suspended))
        self.fleets.suspend(fleet.name)
        low_bound, high_bound = min(fleet.capacity.min, low), max(high, fleet.capacity.max, start)
        self.fleets.update_group(
            fleet.name, version=version, min_size=low_bound, max_size=high_bound
        )
        if not low_bound <= group.desired <= high_bound:
            return None  # AWS moved the desired capacity into the new bounds: read it again
        return replace_field(
            group,
            version=str(version),
            min=low_bound,
            max=high_bound,
            suspended=group.suspended | frozenset(SUSPENDED_DURING_ROLLOUT),
        )

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
        """Roll the unfinished ``record`` back to the release it started from (or remove the
        fleet it was creating): reconcile, then the rollback of a failed gate, which replaces,
        never patches.

        ``requested``: someone asked (``--abort-unfinished``, ``abort``): the outcome is then
        ``aborted``, not a failure. Otherwise the rollout was rolling back after a failure and
        this finishes that (``rolled_back``).
        """
        state, now = self.state, self.clock.now()
        ctx = self.ctx.scoped(fleet=fleet.name, rollout=record.id)
        pending = resume.unfinished(state, fleet.name)
        carried = resume.Carried.read(state, pending)
        state.update_rollout(record.id, owner=self.owner)
        resume.take_over(
            state, record.id, pending, carried, self.owner, now, "aborted", reason=reason
        )
        ctx.emit("rollout.aborting", reason=reason, to_release=record.from_release)
        if requested and record.to_release != record.from_release:
            # an operator's decision: the release stays out until apply --retry-failed
            quarantine(
                state,
                fleet.name,
                record.to_release,
                record.id,
                ("abort",),
                reason,
                now,
                from_release=record.from_release,
            )
        info = RolloutInfo(
            id=record.id,
            project=self.spec.name,
            fleet=fleet.name,
            strategy=record.strategy,
            from_release=record.from_release,
            to_release=record.to_release,
            rollback=True,
            region=self.ctx.region,
        )
        runner = self.runner(
            fleet,
            info,
            keeper,
            target=record.from_release or "",
            trusted=record.from_release,
            gated=set(carried.gated),
            launched_before=set(carried.launched),
            original=carried.originals(),
            index=carried.next_index(record),
            rolling_back=True,
            restoring=True,
            desired=recorded_desired(record) if fleet.capacity.managed else None,
        )
        result = FleetResult(
            fleet.name,
            action,
            "rolled_back",
            record.from_release,
            record.to_release,
            record.id,
            error=reason,
        )
        releases = {record.from_release, *(r.to_release for r in pending)}
        try:
            resume.reconcile(runner, carried, releases)
        except (GateFailed, AwsError, PluginError, RolloutFailed, StateError) as exc:
            # Never a finished "failed": the rollout stays unfinished (rolling back) and
            # visible, and the next apply tries again.
            self.rollback_unfinished(info, result, reason, record.from_release, exc)
        else:
            self.roll_back(
                fleet, info, runner, record.from_release, record.to_release, reason, result
            )
            if result.outcome == "rolled_back":
                targets = {r.to_release for r in pending}
                resume.drop_unused_versions(runner, targets, keep={record.from_release})
                if requested:
                    result.outcome = "aborted"  # what was asked for: not a failure
        return self._with_runner(result, runner)

    def abort_unfinished(
        self,
        fleet: FleetSpec,
        record: RolloutRecord,
        keeper: LockKeeper,
        *,
        reason: str = "aborted by abort --fleet",
        action: str = "abort",
    ) -> FleetResult:
        """``immutable-sdk abort`` of a rollout no process runs any more: ``abort`` of the
        fleet's unfinished rollouts, read again under the lock."""
        pending = resume.unfinished(self.state, fleet.name)
        if not pending:
            raise UsageError(f"fleet {self.ctx.unit(fleet.name)!r} has no rollout in progress")
        return self.abort(fleet, pending[0], keeper, reason=reason, action=action)

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
        runner.restoring = True  # the signal that failed the release must not block the way back
        checks = [c.type for c in restoring(fleet.health).checks]
        ctx.emit("rollback.started", reason=reason, to_release=previous, checks=checks)
        self.begin_rollback(info, reason)
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


def recorded_desired(record: RolloutRecord) -> int | None:
    """The desired capacity a rollout recorded at its start (None: an older record)."""
    value = record.data.get("desired")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def rollout_desired(
    fleet: FleetSpec, group: GroupState | None, pending: Sequence[RolloutRecord]
) -> int:
    """The desired capacity a rollout aims for: what the spec wants for the group now, or
    with ``desired: managed`` the group's live desired (within min and max) before any launch
    of the rollout: what an unfinished rollout it continues recorded at its start, as the
    live value is inflated by that rollout's launches."""
    for record in pending if fleet.capacity.managed else ():
        recorded = recorded_desired(record)
        if recorded is not None:
            return recorded
    return fleet.capacity.wanted(group.desired if group else None)
