"""Rolling one fleet to a release: lock, launch template version, strategy steps, rollback.

``FleetDeployer`` does for one fleet what ``Engine.apply`` asks: create, replace, scale or
destroy it, under the fleet's lock, with the rollout journaled in the state store and rolled
back by the same mechanism when a gate fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .aws.fleet import FleetApi
from .clock import Clock
from .context import Context
from .errors import (
    AwsError,
    GateFailed,
    ImmutableSdkError,
    PluginError,
    RolloutFailed,
    StateError,
    UsageError,
)
from .lifecycle import Phase
from .planner import PlanItem, Planner
from .plugin import TAG_RELEASE, Artifact, RolloutChange, RolloutInfo, Strategy
from .plugins import Plugins
from .release import Release
from .results import FleetResult
from .rollout import LockKeeper, RolloutRunner, capacity_bounds, new_rollout_id, to_replace
from .spec.model import FleetSpec, Spec
from .state.base import RolloutRecord, StateStore


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

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    def locked(self, fleet: str, work: Callable[[LockKeeper], FleetResult]) -> FleetResult:
        """Run ``work`` holding the fleet's lock; ``work`` renews the lease through the keeper."""
        keeper = LockKeeper(self.state, fleet, self.owner, self.lease, self.ctx)
        keeper.acquire()
        try:
            return work(keeper)
        finally:
            keeper.release()

    def destroy(self, item: PlanItem, keeper: LockKeeper) -> FleetResult:
        self.ctx.scoped(fleet=item.fleet).emit("fleet.destroying", fleet=item.fleet)
        self.fleets.delete_group(item.fleet)
        return FleetResult(item.fleet, "destroy", "destroyed", item.current_release)

    def scale(self, fleet: FleetSpec, item: PlanItem, keeper: LockKeeper) -> FleetResult:
        cap = fleet.capacity
        ctx = self.ctx.scoped(fleet=fleet.name)
        ctx.emit("fleet.scaling", min=cap.min, desired=cap.desired, max=cap.max)
        self.fleets.update_group(
            fleet.name, min_size=cap.min, desired=cap.desired, max_size=cap.max
        )
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
    ) -> FleetResult:
        """Roll ``fleet`` to ``release`` through its strategy; roll back on failure.

        ``replace``: instances to replace even though they run ``release`` (drift, lifetime).
        """
        now = self.clock.now()
        rollout_id = new_rollout_id(now)
        ctx = self.ctx.scoped(fleet=fleet.name, rollout=rollout_id)
        group = self.fleets.describe_one(fleet.name)
        previous = group.release if group else None
        strategy = self.strategy(fleet)
        change = RolloutChange(
            fleet=fleet,
            new_release=release.id,
            current_release=previous,
            current_instances=len(to_replace(group, release.id, replace)) if group else 0,
            desired=fleet.capacity.desired,
            target_instances=(
                len(group.live()) - len(to_replace(group, release.id, replace)) if group else 0
            ),
        )
        steps = strategy.plan(change)
        info = RolloutInfo(
            id=rollout_id,
            project=self.spec.name,
            fleet=fleet.name,
            strategy=fleet.strategy.type,
            from_release=previous,
            to_release=release.id,
        )
        self.state.record_release(
            fleet.name,
            release.id,
            asdict_artifact(release.artifact),
            dict(release.launch_config),
            now,
            rollout_id,
        )
        self.state.start_rollout(
            RolloutRecord(
                id=rollout_id,
                fleet=fleet.name,
                strategy=fleet.strategy.type,
                from_release=previous,
                to_release=release.id,
                phase=Phase.PROVISIONING.value,
                started_at=now,
                owner=self.owner,
                steps=tuple(s.to_dict() for s in steps),
            )
        )
        ctx.emit(
            "rollout.started",
            action=action,
            from_release=previous,
            to_release=release.id,
            steps=[s.describe() for s in steps],
        )
        self.plugins.hook.immutable_sdk_rollout_started(rollout=info)
        runner = RolloutRunner(
            fleet=fleet,
            plugins=self.plugins,
            ctx=ctx,
            api=self.fleets,
            state=self.state,
            info=info,
            heartbeat=keeper,
            target=release.id,
            trusted=previous,
            replace=replace,
        )
        result = FleetResult(fleet.name, action, "promoted", previous, release.id, rollout_id)
        try:
            version = self.fleets.ensure_version(fleet, release, rollout_id)
            start = len(group.live()) if group else 0
            low, high = capacity_bounds(
                fleet.capacity.desired, steps, group.desired if group else 0
            )
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
                self.fleets.suspend(fleet.name)
                self.fleets.update_group(
                    fleet.name,
                    version=version,
                    min_size=min(fleet.capacity.min, low),
                    max_size=max(high, fleet.capacity.max, start),
                )
            self.state.update_rollout(rollout_id, phase=Phase.SHIFTING.value)
            runner.run(steps)
            self.finish(fleet, release.id)
        except (GateFailed, AwsError, PluginError, RolloutFailed, StateError, UsageError) as exc:
            result.error = str(exc)
            if isinstance(exc, GateFailed):
                result.failed_instances = dict(exc.details)
            ctx.emit("rollout.failed", error=str(exc), details=result.failed_instances)
            if not fleet.rollback_automatic:
                result.outcome = "failed"
                self.end(rollout_id, info, Phase.FAILED, str(exc))
                return self._with_runner(result, runner)
            self.roll_back(fleet, info, runner, previous, release.id, str(exc), result)
            return self._with_runner(result, runner)
        self.end(rollout_id, info, Phase.PROMOTED, None)
        return self._with_runner(result, runner)

    @staticmethod
    def _with_runner(result: FleetResult, runner: RolloutRunner) -> FleetResult:
        result.launched = list(runner.launched)
        result.retired = list(runner.retired)
        return result

    def finish(self, fleet: FleetSpec, release: str) -> None:
        cap = fleet.capacity
        self.fleets.update_group(
            fleet.name, min_size=cap.min, desired=cap.desired, max_size=cap.max
        )
        self.fleets.tag_group(fleet.name, {TAG_RELEASE: release})
        self.fleets.resume(fleet.name)

    def end(self, rollout: str, info: RolloutInfo, phase: Phase, error: str | None) -> None:
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
        ctx.emit("rollback.started", reason=reason, to_release=previous)
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
                    desired=fleet.capacity.desired,
                    target_instances=len(group.live())
                    - len(to_replace(group, previous, runner.replace)),
                    rollback=True,
                )
                runner.target = previous
                runner.trusted = previous
                runner.run(self.strategy(fleet).plan(change))
                self.finish(fleet, previous)
                failed_version = self.fleets.version_of_release(fleet.name, failed)
                if failed_version is not None and failed_version != 1 and failed != previous:
                    self.fleets.delete_versions(fleet.name, [failed_version])
        except ImmutableSdkError as exc:
            result.outcome = "failed"
            result.error = f"{reason}; rollback failed too: {exc}"
            self.end(info.id, info, Phase.FAILED, result.error)
            return
        result.outcome = "rolled_back"
        result.rolled_back_to = previous
        self.end(info.id, info, Phase.ROLLED_BACK, reason)


def asdict_artifact(artifact: Artifact) -> dict[str, Any]:
    return {
        "image": artifact.image,
        "builder": artifact.builder,
        "digest": artifact.digest,
        "amis": dict(artifact.amis),
        "lineage": dict(artifact.lineage),
        "built": artifact.built,
    }
