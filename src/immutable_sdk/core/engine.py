"""The engine: plan, apply, roll back and inspect the fleets of one spec.

    engine = Engine.from_files(["spec.yaml"])
    plan = engine.plan()
    result = engine.apply(plan)

The engine runs the same code against AWS and against the embedded sandbox. It never prints:
it emits events to ``sink`` and fires the plugins' lifecycle hooks. A spec whose fleets deploy
to several regions gets one regional stack per region (``regions.Regional``); its units are
named ``fleet`` in the spec's region and ``fleet@region`` elsewhere, and every method that
takes a fleet's name takes such a key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..aws.session import AwsSession, aws_errors
from ..clock import Clock, RealClock, reserve
from ..errors import UsageError
from ..lifecycle import Event
from ..plugin import Artifact, ImageSpec, ResumableBuilder
from ..plugins import Plugins, load_plugins
from ..release import artifact_to_dict
from ..results import (
    ApplyResult,
    FleetHistory,
    FleetResult,
    FleetStatus,
    Plan,
    PlanItem,
    ReconcileResult,
    UnitTick,
)
from ..spec.model import FleetSpec, Spec
from ..state.base import RolloutRecord, StateStore
from .apply import run_plan, wave_bake, wave_ledger
from .connection import Connection
from .context import EventSink
from .images.builds import Builds
from .images.durable import BUILD_POLL, is_resumable, poll_build, start_build
from .notifiers import start_notifiers
from .planner import builder_for
from .regions import (
    Regional,
    departed_regions,
    keyed_fixes,
    keyed_report,
    keyed_result,
    merged_report,
    plan_regions,
)
from .rollout.holds import PIN, describe, retrying_plan
from .rollout.runner import new_owner
from .rollout.signals import signal_rollout
from .stopping import StopRequest
from .tick.due import not_due
from .tick.horizon import Horizon, Suspended
from .tick.record import record_apply

if TYPE_CHECKING:
    from .drift.remediate import DriftReport, FleetFix

__all__ = ["Engine"]

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
        # Session and state come from one place for every caller (``connection``); a session
        # given by the caller stays the caller's, a connection opened here is closed here.
        self._connection: Connection | None = None
        if session is None:
            connection = self._connection = Connection.open(
                spec,
                sandbox=sandbox,
                endpoint_url=endpoint_url,
                profile=profile,
                max_attempts=max_attempts,
                plugins=self.plugins,
            )
        else:
            connection = Connection(session)
        self.session = connection.session
        try:
            if state is None:
                state = connection.open_state(spec)
        except BaseException:
            self._close_connection()
            raise
        self.state = state
        # One stack per region the spec deploys to (``regions``); the spec's region's first.
        self._lock_wait = lock_wait
        # Unlimited for apply; a reconcile tick's budget while ``reconcile`` runs (``tick``).
        self.horizon = Horizon()
        self.regional = {r: self._stack(r) for r in spec.regions}
        home = self.regional[spec.region]
        self.ctx = home.ctx
        self.fleets = home.fleets
        self.planner = home.planner
        self.deployer = home.deployer
        self.slots = home.slots
        # Last: from here on, close() must run to stop the notifiers' delivery threads.
        self._notifiers = start_notifiers(spec.notifiers, self.plugins)

    def _stack(self, region: str) -> Regional:
        return Regional.of(
            self.spec,
            region,
            session=self.session,
            state=self.state,
            plugins=self.plugins,
            clock=self.clock,
            sink=self.sink,
            owner=self.owner,
            lease=self.lease,
            stop=self.stop,
            lock_wait=self._lock_wait,
            horizon=self.horizon,
        )

    @classmethod
    def from_files(cls, files: Sequence[str | os.PathLike[str]], **kwargs: Any) -> Engine:
        """Load and validate the spec files (later files overlay earlier ones), then build."""
        from ..spec.load import load_spec

        plugins = kwargs.pop("plugins", None) or load_plugins()
        return cls(load_spec(files, plugins=plugins), plugins=plugins, **kwargs)

    # --- lifecycle of the engine ------------------------------------------------------------

    def close(self) -> None:
        self._notifiers.close()
        self.state.close()
        self._close_connection()

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

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

    def plan(self, units: Sequence[str] | None = None) -> Plan:
        """What ``apply`` would do, fleet by fleet (and region by region), with reasons.
        Reads only. Regions the spec no longer deploys to, where the state knows units, are
        planned too: their groups become ``destroy`` items instead of being forgotten.

        ``units``: plan only these unit keys (``web``, ``web@eu-west-1``, or a unit the spec
        dropped): only their regions, images, network references and groups are read, so the
        cost does not grow with the spec's other fleets. Each item is the whole plan's item
        for its unit (its wave included); the plan's ``waves`` and ``builds`` list only the
        units planned. Keys of no unit plan nothing."""
        if units is None:
            for region in departed_regions(self.spec, self.state):
                if region not in self.regional:
                    self.regional[region] = self._stack(region)
            return self._planned(None)
        only: dict[str, set[str]] = {}
        for key in units:
            fleet, _, region = key.partition("@")
            region = region or self.spec.region
            if self.spec.unit_key(fleet, region) == key:  # web@<the spec's region> is no key
                only.setdefault(region, set()).add(fleet)
        if any(region not in self.regional for region in only):  # a unit of a dropped region
            for region in departed_regions(self.spec, self.state):
                if region not in self.regional and region in only:
                    self.regional[region] = self._stack(region)
        return self._planned({r: names for r, names in only.items() if r in self.regional})

    def _planned(self, only: Mapping[str, set[str]] | None) -> Plan:
        if len(self.regional) > 1:
            return plan_regions(self.spec, self.regional, self.plugins, only)
        home = None if only is None else only.get(self.spec.region, set())
        plan = self.planner.plan(only=home)
        region = self.spec.region
        return replace(plan, items=tuple(replace(i, region=region) for i in plan.items))

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
        retry_failed: bool = False,
    ) -> ApplyResult:
        """Carry out ``plan`` (a fresh one when None). ``prune`` allows destroy actions;
        ``recycle`` then replaces instances older than their fleet's ``max_lifetime``;
        ``retry_failed`` rolls out releases that are quarantined (``blocked`` in the plan).

        Fleets roll out ``parallelism`` at a time, in ``depends_on`` order and wave by wave
        (see ``waves``); a failed fleet stops its dependants, or everything with ``fail_fast``.
        """
        plan = plan or self.plan()
        if retry_failed:
            plan = retrying_plan(plan)
        before = self.session.calls.snapshot()
        retries_before = self.session.calls.retries
        start = self.clock.monotonic()
        veto = self.plugins.hook.immutable_sdk_check_plan(plan=plan)
        if veto:
            raise UsageError(f"a plugin refused the plan: {veto}")
        result = ApplyResult(project=self.spec.name)
        # Images build in the background; a fleet waits only for its own image's build. On a
        # virtual clock, time stands still from the builds' start until the fleets' jobs hold
        # their places: else it could run ahead to the end of every build meanwhile.
        held = reserve(self.clock)
        try:
            artifacts = Builds(plan.artifacts, plan.builds, self.build, self.clock, parallelism)
            result.fleets += run_plan(
                self.spec,
                self.clock,
                plan,
                lambda item: self._apply_item(
                    item, artifacts, prune=prune, abort_unfinished=abort_unfinished
                ),
                bake=wave_bake(self.regional, self.plugins.health_checks, self.wave_rollback),
                ledger=wave_ledger(self.regional),
                parallelism=parallelism,
                fail_fast=fail_fast,
                held=held,
            )
        finally:
            held.cancel()  # not handed over (an error before the fleets started)
        # where the plan stands, for any process (the wave bakes' deadlines among it)
        record_apply(self.state, plan, result.fleets, self.clock.now())
        built, failed = artifacts.wait()
        result.builds += [artifact_to_dict(a) for a in built.values()]
        unused = [e for n, e in failed.items() if all(i.image != n for i in plan.items)]
        if unused:  # a failed build no fleet reported: the apply must not look fine
            raise unused[0]
        if recycle:
            from .drift.remediate import fix_results

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

    # --- reconcile: one tick ------------------------------------------------------------------

    def reconcile(
        self,
        plan: Plan | None = None,
        *,
        start: bool = False,
        budget: float = 60.0,
        units: Sequence[str] | None = None,
        parallelism: int = 10,
        fail_fast: bool = False,
    ) -> ReconcileResult:
        """One tick: advance every unfinished rollout by every step due now, and with
        ``start`` begin the rollouts ``plan`` (a fresh one when None) needs. No bake, pause,
        TTL or analysis window is waited out: each is journaled as a deadline and the unit
        reports ``next_at``; polls (gates, instances coming in service) stop when ``budget``
        seconds (on the engine's clock) are spent. Without ``start``, a unit that needs a
        new rollout waits for an operator (``planned``). ``units``: the unit keys the tick
        covers (default: every unit of the spec, or ``plan``'s).

        When every unit waits on time that has not come, nothing but the state store is
        read (``tick.due.not_due``).
        """
        before = self.session.calls.snapshot()
        begun = self.clock.monotonic()
        keys = list(units) if units else [i.key for i in plan.items] if plan else self.unit_keys()
        idle = not_due(self.state, keys, self.clock.now())
        result = ReconcileResult(project=self.spec.name)
        if idle is None:
            if plan is None:  # only the ticked units are read (``plan``'s ``units``)
                plan = self.plan(keys if units else None)
            elif units:
                plan = replace(plan, items=tuple(i for i in plan.items if i.key in keys))
            held = [] if start else [i for i in plan.items if self._needs_start(i)]
            if held:
                kept = tuple(i for i in plan.items if i not in held)
                images = {i.image for i in kept}
                plan = replace(
                    plan, items=kept, builds=tuple(b for b in plan.builds if b in images)
                )
            with self.horizon.tick(self.clock, budget):
                applied = self.apply(plan, parallelism=parallelism, fail_fast=fail_fast)
            items = {i.key: i for i in plan.items}
            for fleet in applied.fleets:
                item = items.get(fleet.fleet)
                if item is not None and fleet.to_release is None:
                    fleet = replace(
                        fleet, from_release=item.current_release, to_release=item.release
                    )
                result.units[fleet.fleet] = UnitTick.of(fleet)
            for item in held:
                result.units[item.key] = UnitTick(
                    "waiting_for_operator",
                    "planned",
                    from_release=item.current_release,
                    to_release=item.release,
                    error=f"{item.action}: run reconcile --yes to start it",
                )
        else:
            result.units.update(idle)
        calls = self.session.calls.since(before)
        result.api_calls = {"total": sum(calls.values()), "by_operation": calls}
        result.duration = self.clock.monotonic() - begun
        return result

    def _needs_start(self, item: PlanItem) -> bool:
        """Whether ``item`` changes a unit that no unfinished rollout is changing already."""
        return item.action != "noop" and self.state.unfinished_rollout(item.key) is None

    def build(self, image_name: str) -> Artifact:
        image = self.spec.images[image_name]
        self.ctx.emit("build.started", image=image_name, builder=image.builder)
        try:
            with aws_errors(f"building image {image_name!r}"):
                builder = builder_for(self.plugins, image)
                if not self.horizon.unlimited and is_resumable(builder):
                    artifact = self._build_by_ticks(image, builder)
                else:
                    artifact = builder.build(image, self.ctx)
        except Suspended:
            raise  # still building: a later tick polls it again
        except Exception as exc:
            self.ctx.emit("build.failed", image=image_name, error=str(exc))
            raise
        self.ctx.emit("build.finished", image=image_name, amis=dict(artifact.amis))
        return artifact

    def _build_by_ticks(self, image: ImageSpec, builder: ResumableBuilder) -> Artifact:
        """In a tick, a resumable build (EC2 Image Builder) is started once, recorded in the
        state store, and asked where it stands once per tick; Suspended while it runs."""
        record = start_build(self.state, builder, image, self.ctx)
        polled = poll_build(self.state, builder, image, self.ctx, record.digest)
        if polled.artifact is not None:
            return polled.artifact
        next_at = self.clock.now() + BUILD_POLL
        self.ctx.emit("build.waiting", image=image.name, status=polled.detail, next_at=next_at)
        raise Suspended(next_at, "build", {"image": image.name, "since": record.started_at})

    def _apply_item(
        self,
        item: PlanItem,
        artifacts: Mapping[str, Artifact],
        *,
        prune: bool,
        abort_unfinished: bool = False,
    ) -> FleetResult:
        stack = self.regional.get(item.region or self.spec.region)
        if stack is None:
            raise UsageError(f"the spec deploys nothing to region {item.region!r}")
        result = stack.apply_item(item, artifacts, prune=prune, abort_unfinished=abort_unfinished)
        return keyed_result(result, item.key)

    # --- operator actions -------------------------------------------------------------------

    def rollback(self, fleet_name: str, to: str | None = None, *, pin: bool = True) -> FleetResult:
        """Roll ``fleet_name`` back to release ``to`` (default: the one before the current).
        ``fleet_name`` is a unit key: ``web``, or ``web@eu-west-1`` outside the spec's region.
        ``pin``: the fleet stays on ``to`` until ``unpin`` or a new desired release."""
        stack, fleet = self._unit(fleet_name)
        return keyed_result(stack.rollback(fleet, to, pin=pin), stack.key(fleet.name))

    def wave_rollback(self, fleet_name: str, to: str) -> FleetResult:
        """A wave bake's rollback: no pin (the bake quarantined the release it rolls back
        from, so a new desired release is not held back)."""
        return self.rollback(fleet_name, to, pin=False)

    def unpin(self, fleet_name: str) -> list[dict[str, Any]]:
        """Remove ``fleet_name``'s pin (``rollback`` made it); the holds removed."""
        stack, fleet = self._unit(fleet_name)
        return [describe(h) for h in stack.state.drop_holds(fleet.name, PIN)]

    def promote(self, fleet_name: str, *, full: bool = False) -> RolloutRecord:
        """Continue ``fleet_name``'s paused rollout (``full``: skip its remaining steps)."""
        stack, fleet = self._unit(fleet_name)
        key = stack.key(fleet.name)
        return signal_rollout(self.state, self.clock, key, "promote-full" if full else "promote")

    def abort(self, fleet_name: str) -> RolloutRecord:
        """Make ``fleet_name``'s running rollout roll back now (from any process)."""
        stack, fleet = self._unit(fleet_name)
        return signal_rollout(self.state, self.clock, stack.key(fleet.name), "abort")

    def abort_unfinished(self, fleet_name: str) -> FleetResult | None:
        """Roll back ``fleet_name``'s unfinished rollout that no process runs any more (its
        lock is free or its lease expired), as ``apply --abort-unfinished`` would. None when a
        process still runs it: ``abort`` signals that process instead. A fleet with traffic
        slots goes back to the slot its rollout moved traffic from (``traffic.deployer``)."""
        stack, fleet = self._unit(fleet_name)
        result = stack.abort_unfinished(fleet)
        return None if result is None else keyed_result(result, stack.key(fleet.name))

    def _unit(self, name: str) -> tuple[Regional, FleetSpec]:
        """The regional stack and fleet of a unit key (``web``, ``web@eu-west-1``)."""
        fleet, _, region = name.partition("@")
        stack = self.regional.get(region or self.spec.region)
        if stack is None or fleet not in stack.spec.fleets:
            known = ", ".join(sorted(self.unit_keys()))
            raise UsageError(f"the spec has no fleet {name!r} (fleets: {known})")
        return stack, stack.spec.fleets[fleet]

    def unit_keys(self) -> list[str]:
        """Every fleet of the spec in every region it deploys to, as ``fleet[@region]``."""
        return [key for key, _, _ in self.spec.units()]

    def status(self) -> list[FleetStatus]:
        """Per fleet and region: release, instances by release and health, rollout."""
        by_key = {e["fleet"]: e for s in self.regional.values() for e in s.status()}
        return [by_key[key] for key in self.unit_keys()]

    def history(self, fleet: str | None = None, limit: int = 20) -> dict[str, FleetHistory]:
        """Releases and rollouts with outcomes, newest first (``fleet``: a unit key)."""
        names = [fleet] if fleet else self.unit_keys()
        return {
            name: FleetHistory(
                releases=[asdict(r) for r in self.state.releases(name)[:limit]],
                rollouts=[asdict(r) for r in self.state.rollouts(name, limit=limit)],
            )
            for name in names
        }

    # --- drift and lifetime (drift.remediate) ---------------------------------------------

    def _by_region(self, fleets: Sequence[str] | None) -> dict[str, list[str] | None]:
        """Unit keys (none: all) as fleet names per region; None means every fleet there."""
        if not fleets:
            return {region: None for region in self.regional}
        chosen: dict[str, list[str] | None] = {}
        for key in fleets:
            stack, fleet = self._unit(key)
            names = chosen.setdefault(stack.region, [])
            assert names is not None
            names.append(fleet.name)
        return chosen

    def drift(
        self, fleets: Sequence[str] | None = None, *, fix: bool = False, dry_run: bool = False
    ) -> DriftReport:
        """Every fleet's drift (a ``DriftReport``). ``fix`` remedies it by replacement,
        restoring and scaling, then looks again (``report.remaining``); ``dry_run`` only plans.
        ``fleets``: unit keys (``web``, ``web@eu-west-1``); none: every fleet in every region."""
        reports = []
        for region, names in self._by_region(fleets).items():
            stack = self.regional[region]
            remediator = stack.remediator()
            report = remediator.report(names)
            if fix and not report.clean:
                remediator.fix(report, dry_run=dry_run)
                if not dry_run:
                    report.remaining = remediator.report(names).drifts
            reports.append(keyed_report(report, stack))
        return merged_report(self.spec.name, reports, self.unit_keys())

    def recycle(
        self, fleets: Sequence[str] | None = None, *, dry_run: bool = False
    ) -> list[FleetFix]:
        """Replace instances older than their fleet's ``max_lifetime``, oldest first, through
        the fleet's strategy (a ``FleetFix`` per fleet that had any)."""
        from .drift.remediate import LIFETIME_KINDS

        fixes: list[FleetFix] = []
        for region, names in self._by_region(fleets).items():
            stack = self.regional[region]
            remediator = stack.remediator()
            report = remediator.report(names)
            done = remediator.fix(report, dry_run=dry_run, kinds=LIFETIME_KINDS, action="recycle")
            fixes += keyed_fixes(done, stack)
        return fixes
