"""The engine: plan, apply, roll back and inspect the fleets of one spec.

    engine = Engine.from_files(["spec.yaml"])
    plan = engine.plan()
    result = engine.apply(plan)

The engine runs the same code against AWS and against the embedded sandbox. It never prints:
it emits events to ``sink`` and fires the plugins' lifecycle hooks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import resume
from .aws.fleet import FleetApi
from .aws.session import AwsSession, aws_errors
from .clock import Clock, RealClock
from .context import Context, EventSink
from .deploy import FleetDeployer, asdict_artifact
from .errors import (
    StateError,
    UsageError,
)
from .lifecycle import Event
from .locks import LockKeeper
from .notifiers import start_notifiers
from .planner import Plan, PlanItem, Planner, builder_for
from .plugin import Artifact
from .plugins import Plugins, load_plugins
from .release import Release, make_release
from .results import ApplyResult, FleetResult
from .rollout import new_owner
from .slots import SlotDeployer, rollout_progress, signal_rollout
from .spec.model import FleetSpec, Spec
from .state.base import ReleaseRecord, RolloutRecord, StateStore
from .stopping import StopRequest

if TYPE_CHECKING:
    from .remediate import DriftReport, FleetFix, Remediator

__all__ = ["ApplyResult", "Engine", "FleetResult", "Plan", "PlanItem"]

DEFAULT_LEASE = 60.0


def _discard(event: Event) -> None:
    return None


class Engine:
    """Plans and applies one spec. Close it (or use ``with``) to stop an embedded sandbox."""

    def __init__(
        self,
        spec: Spec,
        *,
        plugins: Plugins | None = None,
        clock: Clock | None = None,
        session: AwsSession | None = None,
        state: StateStore | None = None,
        sink: EventSink | None = None,
        endpoint_url: str | None = None,
        sandbox: bool = False,
        profile: str | None = None,
        max_attempts: int = 8,
        owner: str | None = None,
        lease: float = DEFAULT_LEASE,
        lock_wait: float = 0.0,
        stop: StopRequest | None = None,
    ) -> None:
        self.spec = spec
        # ``stop.request()`` (from a signal handler or any thread) stops rollouts at their next
        # safe point, leaving them resumable; ``lock_wait``: seconds to wait for a held lock.
        self.stop = stop or StopRequest()
        self.plugins = plugins or load_plugins()
        self.clock = clock or RealClock()
        self.sink = sink or _discard
        self.owner = owner or new_owner()
        self.lease = lease
        self._sandbox: Any = None
        self._scratch: Any = None
        credentials = None
        if sandbox and session is None:
            from .emulator import SANDBOX_CREDENTIALS
            from .sandbox import Sandbox

            url = os.environ.get("IMMUTABLE_SDK_SANDBOX_URL")
            if url:  # a sandbox served by `immutable-sdk sandbox serve`
                self._sandbox = Sandbox.attach(url)
            else:
                self._sandbox = Sandbox().start()
            self._sandbox.seed(spec)
            endpoint_url = self._sandbox.url
            credentials = SANDBOX_CREDENTIALS
            if state is None:
                state = self._sandbox_state(spec)
        self.session = session or AwsSession(
            spec.region,
            endpoint_url=endpoint_url,
            profile=profile,
            max_attempts=max_attempts,
            credentials=credentials,
        )
        self.ctx = Context(
            project=spec.name,
            region=spec.region,
            session=self.session,
            clock=self.clock,
            sink=self.sink,
        )
        if state is None:
            from .state import open_state

            state = open_state(spec.state, spec.name, session=self.session)
        self.state = state
        self.fleets = FleetApi(self.session, spec.name, spec.region)
        self.planner = Planner(spec, self.plugins, self.ctx, self.fleets, self.state)
        self.deployer = FleetDeployer(
            spec,
            self.plugins,
            self.ctx,
            self.fleets,
            self.state,
            self.planner,
            self.owner,
            self.lease,
            stop=self.stop,
            lock_wait=lock_wait,
        )
        self.slots = SlotDeployer(self.deployer)
        # Last: from here on, close() must run to stop the notifiers' delivery threads.
        self._notifiers = start_notifiers(spec.notifiers, self.plugins)

    def _sandbox_state(self, spec: Spec) -> StateStore:
        """State that lives as long as the sandbox: the served one's file, or a scratch dir."""
        import tempfile

        from .state.sqlite import SqliteStateStore

        path = os.environ.get("IMMUTABLE_SDK_SANDBOX_STATE")
        if not path or not os.environ.get("IMMUTABLE_SDK_SANDBOX_URL"):
            self._scratch = tempfile.TemporaryDirectory(prefix="immutable-sdk-state-")
            path = os.path.join(self._scratch.name, "state.db")
        return SqliteStateStore(Path(path), spec.name)

    @classmethod
    def from_files(cls, files: Sequence[str | os.PathLike[str]], **kwargs: Any) -> Engine:
        """Load and validate the spec files (later files overlay earlier ones), then build."""
        from .spec.load import load_spec

        plugins = kwargs.pop("plugins", None) or load_plugins()
        return cls(load_spec(files, plugins=plugins), plugins=plugins, **kwargs)

    # --- lifecycle of the engine ------------------------------------------------------------

    def close(self) -> None:
        self._notifiers.close()
        self.state.close()
        if self._sandbox is not None:
            self._sandbox.stop()
            self._sandbox = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- plan -------------------------------------------------------------------------------

    def plan(self) -> Plan:
        """What ``apply`` would do, fleet by fleet, with reasons. Reads only."""
        return self.planner.plan()

    # --- apply ------------------------------------------------------------------------------

    def apply(
        self,
        plan: Plan | None = None,
        *,
        prune: bool = False,
        recycle: bool = False,
        parallelism: int = 10,
        fail_fast: bool = False,
        abort_unfinished: bool = False,
    ) -> ApplyResult:
        """Carry out ``plan`` (a fresh one when None). ``prune`` allows destroy actions;
        ``recycle`` then replaces instances older than their fleet's ``max_lifetime``.

        Fleets roll out ``parallelism`` at a time, in ``depends_on`` order and wave by wave
        (see ``waves``); a failed fleet stops its dependants, or everything with ``fail_fast``.
        """
        plan = plan or self.plan()
        before = self.session.calls.snapshot()
        retries_before = self.session.calls.retries
        start = self.clock.monotonic()
        veto = self.plugins.hook.immutable_sdk_check_plan(plan=plan)
        if veto:
            raise UsageError(f"a plugin refused the plan: {veto}")
        result = ApplyResult(project=self.spec.name)
        artifacts = dict(plan.artifacts)
        for name in plan.builds:
            artifacts[name] = self.build(name)
            result.builds.append(asdict_artifact(artifacts[name]))
        from .waves import run_plan

        result.fleets += run_plan(
            self,
            plan,
            lambda item: self._apply_item(
                item, artifacts, prune=prune, abort_unfinished=abort_unfinished
            ),
            parallelism=parallelism,
            fail_fast=fail_fast,
        )
        if recycle:
            from .remediate import fix_results

            result.fleets += fix_results(self.recycle())
        result.duration = self.clock.monotonic() - start
        calls = self.session.calls.since(before)
        result.api_calls = {
            "total": sum(calls.values()),
            "mutating": sum(v for k, v in calls.items() if k in self.session.calls.mutating()),
            "retries": self.session.calls.retries - retries_before,
            "by_operation": calls,
        }
        return result

    def build(self, image_name: str) -> Artifact:
        image = self.spec.images[image_name]
        self.ctx.emit("build.started", image=image_name, builder=image.builder)
        with aws_errors(f"building image {image_name!r}"):
            artifact = builder_for(self.plugins, image).build(image, self.ctx)
        self.ctx.emit("build.finished", image=image_name, amis=dict(artifact.amis))
        return artifact

    def _apply_item(
        self,
        item: PlanItem,
        artifacts: dict[str, Artifact],
        *,
        prune: bool,
        abort_unfinished: bool = False,
    ) -> FleetResult:
        if item.action == "noop":
            return FleetResult(item.fleet, "noop", "noop", item.current_release, item.release)
        if item.action == "destroy":
            if not prune:
                return FleetResult(
                    item.fleet,
                    "destroy",
                    "skipped",
                    item.current_release,
                    error="not destroyed: pass --prune to destroy fleets the spec dropped",
                )
            return self.deployer.locked(
                item.fleet, lambda keeper: self.slots.destroy(item, keeper), action="destroy"
            )
        fleet = self.spec.fleets[item.fleet]
        deployer = self.slots if fleet.traffic else self.deployer  # traffic slots: slots.py
        if item.action == "scale":
            return self.deployer.locked(
                item.fleet, lambda keeper: deployer.scale(fleet, item, keeper), action="scale"
            )
        release = self.planner.desired_release(fleet, artifacts[fleet.image])
        if deployer is self.deployer:  # resume.py: the rolling deployer resumes or aborts
            return self.deployer.locked(
                item.fleet,
                lambda keeper: self.deployer.roll(
                    fleet, release, item.action, keeper, abort_unfinished=abort_unfinished
                ),
                action=item.action,
            )
        return self.deployer.locked(
            item.fleet,
            lambda keeper: self.slots.roll(
                fleet, release, item.action, keeper, abort_unfinished=abort_unfinished
            ),
            action=item.action,
        )

    # --- operator actions -------------------------------------------------------------------

    def rollback(self, fleet_name: str, to: str | None = None) -> FleetResult:
        """Roll ``fleet_name`` back to release ``to`` (default: the one before the current)."""
        fleet = self._fleet(fleet_name)
        if fleet.traffic:  # traffic slots: the live slot's group, and a release to the other
            group = self.planner.live_slot_groups().get(fleet_name)
        else:
            group = self.fleets.describe_one(fleet_name)
        deployer = self.slots if fleet.traffic else self.deployer
        if group is None:
            raise UsageError(f"fleet {fleet_name!r} has no Auto Scaling group to roll back")
        records = self.state.releases(fleet_name)
        if to is None:
            older = [r for r in records if r.release != group.release]
            promoted = {
                r.to_release for r in self.state.rollouts(fleet_name) if r.outcome == "promoted"
            }
            candidates = [r for r in older if r.release in promoted]
            if not candidates:
                raise UsageError(f"fleet {fleet_name!r} has no earlier release to roll back to")
            record = candidates[0]
        else:
            found = self.state.get_release(fleet_name, to)
            if found is None:
                known = ", ".join(r.release for r in records) or "none"
                raise UsageError(f"fleet {fleet_name!r} has no release {to!r} (known: {known})")
            record = found
        release = release_from_record(fleet, record)
        return self.deployer.locked(
            fleet_name,
            lambda keeper: deployer.roll(fleet, release, "rollback", keeper),
            action="rollback",
        )

    def promote(self, fleet_name: str, *, full: bool = False) -> RolloutRecord:
        """Continue ``fleet_name``'s paused rollout (``full``: skip its remaining steps)."""
        self._fleet(fleet_name)
        return signal_rollout(
            self.state, self.clock, fleet_name, "promote-full" if full else "promote"
        )

    def abort(self, fleet_name: str) -> RolloutRecord:
        """Make ``fleet_name``'s running rollout roll back now (from any process)."""
        self._fleet(fleet_name)
        return signal_rollout(self.state, self.clock, fleet_name, "abort")

    def abort_unfinished(self, fleet_name: str) -> FleetResult | None:
        """Roll back ``fleet_name``'s unfinished rollout that no process runs any more (its
        lock is free or its lease expired), as ``apply --abort-unfinished`` would. None when a
        process still runs it: ``abort`` signals that process instead. A fleet with traffic
        slots goes back to the slot its rollout moved traffic from (slots.py)."""
        fleet = self._fleet(fleet_name)
        record = self.state.unfinished_rollout(fleet_name)
        if record is None:
            raise UsageError(f"fleet {fleet_name!r} has no rollout in progress")
        lock = self.state.get_lock(fleet_name)
        if lock is not None and lock.lease_until >= self.clock.now():
            return None
        if fleet.traffic:
            return self.deployer.locked(
                fleet_name,
                lambda keeper: self.slots.abort_unfinished(fleet, record, keeper),
                action="abort",
            )

        def work(keeper: LockKeeper) -> FleetResult:
            pending = resume.unfinished(self.state, fleet_name)  # again, under the lock
            if not pending:
                raise UsageError(f"fleet {fleet_name!r} has no rollout in progress")
            reason = "aborted by abort --fleet"
            return self.deployer.abort(fleet, pending[0], keeper, reason=reason)

        return self.deployer.locked(fleet_name, work, action="abort")

    def _fleet(self, name: str) -> FleetSpec:
        try:
            return self.spec.fleets[name]
        except KeyError:
            known = ", ".join(sorted(self.spec.fleets))
            raise UsageError(f"the spec has no fleet {name!r} (fleets: {known})") from None

    def status(self) -> list[dict[str, Any]]:
        """Per fleet: release, instances by release and health, rollout in progress."""
        groups = self.fleets.describe(list(self.spec.fleets))
        groups.update(self.planner.live_slot_groups())
        out = []
        for name in self.spec.fleets:
            group = groups[name]
            unfinished = self.state.unfinished_rollout(name)
            lock = self.state.get_lock(name)
            entry: dict[str, Any] = {
                "fleet": name,
                "exists": group is not None,
                "release": group.release if group else None,
                "capacity": (
                    {"min": group.min, "desired": group.desired, "max": group.max}
                    if group
                    else None
                ),
                "instances": {},
                "rollout_in_progress": None,
                "lock": asdict(lock) if lock else None,
            }
            if group:
                for m in group.live():
                    key = m.release or "unknown"
                    counts = entry["instances"].setdefault(key, {"in_service": 0, "other": 0})
                    counts["in_service" if m.in_service else "other"] += 1
            if unfinished:
                journal = self.state.journal(unfinished.id)
                entry["rollout_in_progress"] = {
                    "id": unfinished.id,
                    "phase": unfinished.phase,
                    "to_release": unfinished.to_release,
                    **rollout_progress(unfinished, journal),
                    **resume.progress(unfinished, journal, lock, self.clock.now()),
                }
            if self.spec.fleets[name].traffic:
                entry["traffic"] = self.slots.traffic_status(self.spec.fleets[name])
            out.append(entry)
        return out

    def history(self, fleet: str | None = None, limit: int = 20) -> dict[str, Any]:
        """Releases and rollouts with outcomes, newest first."""
        names = [fleet] if fleet else list(self.spec.fleets)
        return {
            name: {
                "releases": [asdict(r) for r in self.state.releases(name)[:limit]],
                "rollouts": [asdict(r) for r in self.state.rollouts(name, limit=limit)],
            }
            for name in names
        }

    # --- drift and lifetime (remediate.py) --------------------------------------------------

    def _remediator(self) -> Remediator:
        from .remediate import Remediator

        return Remediator(self.spec, self.ctx, self.fleets, self.state, self.deployer)

    def drift(
        self, fleets: Sequence[str] | None = None, *, fix: bool = False, dry_run: bool = False
    ) -> DriftReport:
        """Every fleet's drift (a ``remediate.DriftReport``). ``fix`` remedies it by replacement,
        restoring and scaling, then looks again (``report.remaining``); ``dry_run`` only plans."""
        remediator = self._remediator()
        report = remediator.report(fleets)
        if fix and not report.clean:
            remediator.fix(report, dry_run=dry_run)
            if not dry_run:
                report.remaining = remediator.report(fleets).drifts
        return report

    def recycle(
        self, fleets: Sequence[str] | None = None, *, dry_run: bool = False
    ) -> list[FleetFix]:
        """Replace instances older than their fleet's ``max_lifetime``, oldest first, through
        the fleet's strategy (``remediate.FleetFix`` per fleet that had any)."""
        from .remediate import LIFETIME_KINDS

        remediator = self._remediator()
        report = remediator.report(fleets)
        return remediator.fix(report, dry_run=dry_run, kinds=LIFETIME_KINDS, action="recycle")


def release_from_record(fleet: FleetSpec, record: ReleaseRecord) -> Release:
    a = record.artifact
    artifact = Artifact(
        image=str(a["image"]),
        builder=str(a["builder"]),
        digest=str(a["digest"]),
        amis=dict(a["amis"]),
        lineage=dict(a.get("lineage", {})),
    )
    release = make_release(fleet, artifact, dict(record.launch_config))
    if release.id != record.release:
        raise StateError(
            f"release {record.release} of fleet {fleet.name!r} does not match its recorded "
            "launch configuration (the state store was changed by hand?)"
        )
    return release
