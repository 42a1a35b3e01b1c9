"""One engine, several regions: a regional stack per region a spec deploys to.

A fleet may deploy to several regions (``regions: [us-east-1, eu-west-1]``). Each (fleet,
region) is one *unit*: its own Auto Scaling group (same name, other region), release, rollout,
lock and history. Its key is the fleet's name in the spec's own region and ``fleet@region`` in
any other, so a single-region spec keeps its state keys, events and results exactly.

``Regional`` is everything that works on one region: the spec projected onto it
(``Spec.for_region``), a context and AWS clients defaulting to that region, the state store
keyed by unit (``state.regional``), the planner and the deployers. The ``Engine`` facade keeps
one per region, plans each and merges the plans, and hands each plan item to its region's stack.
Events of a region other than the spec's carry the unit key as their fleet.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from ..aws.fleet import FleetApi
from ..aws.session import AwsSession
from ..clock import Clock
from ..errors import UsageError
from ..lifecycle import Event
from ..plugin import Artifact
from ..plugins import Plugins
from ..release import release_from_record
from ..results import (
    Capacity,
    FleetResult,
    FleetStatus,
    InstanceCounts,
    Plan,
    PlanItem,
)
from ..spec.model import FleetSpec, Spec
from ..state.base import StateStore
from ..state.regional import RegionalState
from .context import Context, EventSink
from .planner import Planner, waved_plan
from .rollout import holds, resume
from .rollout.contract import Deployer, deployer_for
from .rollout.deployer import FleetDeployer
from .rollout.locks import LockKeeper
from .rollout.signals import rollout_progress
from .stopping import StopRequest
from .tick.horizon import Horizon, Suspended
from .traffic.deployer import SlotDeployer, count_other_slots

if TYPE_CHECKING:
    from .drift.remediate import DriftReport, FleetFix, Remediator


def labelled(sink: EventSink, region: str) -> EventSink:
    """A sink that names each event's fleet by its unit key in ``region`` (``web@eu-west-1``)."""
    suffix = f"@{region}"

    def emit(event: Event) -> None:
        if event.fleet and not event.fleet.endswith(suffix):
            event = replace(event, fleet=event.fleet + suffix)
        sink(event)

    return emit


@dataclass
class Regional:
    """The part of an engine that works in one region (see the module docstring)."""

    region: str
    spec: Spec  # the spec projected onto the region (the whole spec for single-region specs)
    whole: Spec  # the spec as written: unit keys, other regions
    ctx: Context
    fleets: FleetApi
    state: StateStore
    planner: Planner
    deployer: FleetDeployer
    slots: SlotDeployer

    @classmethod
    def of(
        cls,
        spec: Spec,
        region: str,
        *,
        session: AwsSession,
        state: StateStore,
        plugins: Plugins,
        clock: Clock,
        sink: EventSink,
        owner: str,
        lease: float,
        stop: StopRequest | None = None,
        lock_wait: float = 0.0,
        horizon: Horizon | None = None,
    ) -> Regional:
        """The stack of ``region``: ``session`` and ``state`` are the spec's own (its region,
        its state store); the stack moves them to ``region`` and keys the state by unit."""
        home = region == spec.region
        # Another region (even one the spec dropped) sees only the fleets deployed there.
        view = spec.for_region(region) if spec.multi_region or not home else spec
        session = session.in_region(region)
        ctx = Context(
            project=spec.name,
            region=region,
            session=session,
            clock=clock,
            sink=sink if home else labelled(sink, region),
            unit_suffix="" if home else f"@{region}",
            horizon=horizon or Horizon(),
        )
        regional: StateStore = state if home else RegionalState(state, region)
        fleets = FleetApi(session, spec.name, region)
        planner = Planner(view, plugins, ctx, fleets, regional)
        parts = (view, plugins, ctx, fleets, regional, owner, lease, stop, lock_wait)
        deployer, slots = FleetDeployer(*parts), SlotDeployer(*parts)
        return cls(region, view, spec, ctx, fleets, regional, planner, deployer, slots)

    def key(self, fleet: str) -> str:
        return self.whole.unit_key(fleet, self.region)

    def deployer_for(self, fleet: FleetSpec | None) -> Deployer:
        """The deployer of ``fleet`` (``contract.deployer_for``; None: a dropped fleet)."""
        return deployer_for(fleet, self.deployer, self.slots)

    # --- apply ------------------------------------------------------------------------------

    def apply_item(
        self,
        item: PlanItem,
        artifacts: Mapping[str, Artifact],
        *,
        prune: bool,
        abort_unfinished: bool = False,
    ) -> FleetResult:
        if item.action == "noop":
            return FleetResult(item.fleet, "noop", "noop", item.current_release, item.release)
        if item.action in holds.HELD_ACTIONS:  # quarantined or pinned: nothing changes
            return holds.held_result(item, self.key(item.fleet))
        if item.action == "destroy":
            if not prune:
                return FleetResult(
                    item.fleet,
                    "destroy",
                    "skipped",
                    item.current_release,
                    error="not destroyed: pass --prune to destroy fleets the spec dropped",
                )
            gone = self.deployer_for(None)
            return gone.locked(
                item.fleet, lambda keeper: gone.destroy(item, keeper), action="destroy"
            )
        fleet = self.spec.fleets[item.fleet]
        deployer = self.deployer_for(fleet)
        if item.action == "scale":
            return deployer.locked(
                item.fleet, lambda keeper: deployer.scale(fleet, item, keeper), action="scale"
            )
        try:
            artifact = artifacts[fleet.image]
        except Suspended as exc:  # its image still builds (a tick's resumable build)
            return FleetResult(
                item.fleet,
                item.action,
                "waiting",
                item.current_release,
                waiting_for=exc.waiting_for,
                next_at=exc.next_at,
            )
        release = self.planner.desired_release(fleet, artifact)

        def roll(keeper: LockKeeper) -> FleetResult:
            holds.lift(self.state, replace(item, release=release.id))  # --retry-failed, a pin
            return deployer.roll(
                fleet, release, item.action, keeper, abort_unfinished=abort_unfinished
            )

        return deployer.locked(item.fleet, roll, action=item.action)

    # --- operator actions -------------------------------------------------------------------

    def rollback(self, fleet: FleetSpec, to: str | None = None, *, pin: bool = True) -> FleetResult:
        name, shown = fleet.name, self.key(fleet.name)
        deployer = self.deployer_for(fleet)
        group = deployer.live_group(fleet)  # a slot fleet: the live slot's group
        if group is None:
            raise UsageError(f"fleet {shown!r} has no Auto Scaling group to roll back")
        records = self.state.releases(name)
        if to is None:
            older = [r for r in records if r.release != group.release]
            promoted = {r.to_release for r in self.state.rollouts(name) if r.outcome == "promoted"}
            candidates = [r for r in older if r.release in promoted]
            if not candidates:
                raise UsageError(f"fleet {shown!r} has no earlier release to roll back to")
            record = candidates[0]
        else:
            found = self.state.get_release(name, to)
            if found is None:
                known = ", ".join(r.release for r in records) or "none"
                raise UsageError(f"fleet {shown!r} has no release {to!r} (known: {known})")
            record = found
        release = release_from_record(fleet, record)
        rolled_back_from = group.release

        def roll_back(keeper: LockKeeper) -> FleetResult:
            result = deployer.roll(fleet, release, "rollback", keeper)
            if pin and result.ok and rolled_back_from != release.id:
                # The next apply must not undo the operator's decision (holds.py).
                now = self.ctx.clock.now()
                holds.pin(self.state, name, release.id, rolled_back_from, result.rollout, now)
            return result

        return deployer.locked(name, roll_back, action="rollback")

    def abort_unfinished(self, fleet: FleetSpec) -> FleetResult | None:
        name, shown = fleet.name, self.key(fleet.name)
        record = self.state.unfinished_rollout(name)
        if record is None:
            raise UsageError(f"fleet {shown!r} has no rollout in progress")
        lock = self.state.get_lock(name)
        if lock is not None and lock.lease_until >= self.ctx.clock.now():
            return None
        deployer = self.deployer_for(fleet)
        return deployer.locked(
            name, lambda keeper: deployer.abort_unfinished(fleet, record, keeper), action="abort"
        )

    def status(self) -> list[FleetStatus]:
        """Per fleet of the region: release, instances by release and health, rollout."""
        groups = self.fleets.describe(list(self.spec.fleets))
        groups.update(self.planner.live_slot_groups())
        out = []
        for name, fleet in self.spec.fleets.items():
            group = groups[name]
            unfinished = self.state.unfinished_rollout(name)
            lock = self.state.get_lock(name)
            entry = FleetStatus(
                fleet=self.key(name),
                region=self.region,
                exists=group is not None,
                release=group.release if group else None,
                capacity=(
                    Capacity(min=group.min, desired=group.desired, max=group.max) if group else None
                ),
                instances={},
                # processes a rollout suspends; left suspended, they are drift
                suspended=sorted(group.suspended) if group else [],
                rollout_in_progress=None,
                lock=asdict(lock) if lock else None,
                # quarantined releases and a rollback's pin: what apply will not undo
                holds=[holds.describe(h) for h in self.state.holds(name)],
            )
            if group:
                for m in group.live():
                    key = m.release or "unknown"
                    counts = entry["instances"].setdefault(
                        key, InstanceCounts(in_service=0, other=0)
                    )
                    counts["in_service" if m.in_service else "other"] += 1
            if unfinished:
                journal = self.state.journal(unfinished.id)
                entry["rollout_in_progress"] = {
                    "id": unfinished.id,
                    "phase": unfinished.phase,
                    "from_release": unfinished.from_release,
                    "to_release": unfinished.to_release,
                    # why it failed (rolling back), or why it is not finished
                    "error": unfinished.error,
                    "rollback_error": unfinished.data.get("rollback_error"),
                    **rollout_progress(unfinished, journal),
                    **resume.progress(unfinished, journal, lock, self.ctx.clock.now()),
                }
            extra = self.deployer_for(fleet).status(fleet)
            if "traffic" in extra:
                entry["traffic"] = extra["traffic"]
                count_other_slots(entry["instances"], entry["traffic"])
            if "analysis" in extra:
                entry["analysis"] = extra["analysis"]
            out.append(entry)
        return out

    def remediator(self) -> Remediator:
        from .drift.remediate import Remediator

        return Remediator(self.spec, self.ctx, self.fleets, self.state, self.deployer)


# --- merging what the regions found ----------------------------------------------------------


def departed_regions(spec: Spec, state: StateStore) -> list[str]:
    """Regions where the state knows units (``fleet@region``) but the spec deploys nothing."""
    found = {key.rpartition("@")[2] for key in state.fleets() if "@" in key}
    return sorted(found - set(spec.regions))


def plan_regions(
    spec: Spec,
    stacks: Mapping[str, Regional],
    plugins: Plugins,
    only: Mapping[str, Collection[str]] | None = None,
) -> Plan:
    """Every region's plan as one: items by fleet then region (destroys last), each with its
    region and unit key, and the spec's waves over units of (fleet, region).

    ``only``: region -> the fleets to plan there (``Planner.plan``'s ``only``), None for all;
    regions it does not name are not read at all, images no chosen fleet uses not looked up."""
    home = stacks[spec.region]
    whole = Planner(spec, plugins, home.ctx, home.fleets, home.state)
    images = None
    if only is not None:
        chosen = {name for names in only.values() for name in names}
        images = {f.image for name, f in spec.fleets.items() if name in chosen}
    artifacts, builds = whole.find_artifacts(images)  # once: the artifacts serve every region
    items: list[PlanItem] = []
    for region, stack in stacks.items():
        if only is not None and region not in only:
            continue
        stack.planner.bases = dict(whole.bases)
        plan = stack.planner.plan((artifacts, builds), None if only is None else only[region])
        items += [replace(i, region=region, key=stack.key(i.fleet)) for i in plan.items]
    fleet_order = {name: n for n, name in enumerate(spec.fleets)}
    region_order = {r: n for n, r in enumerate(dict.fromkeys([*spec.regions, *stacks]))}
    items.sort(
        key=lambda i: (
            i.action == "destroy",
            fleet_order.get(i.fleet, len(fleet_order)),
            i.fleet,
            region_order[i.region or spec.region],
        )
    )
    return waved_plan(spec, items, builds, artifacts)


def keyed_result(result: FleetResult, key: str) -> FleetResult:
    return result if result.fleet == key else replace(result, fleet=key)


def keyed_fixes(fixes: Sequence[FleetFix], stack: Regional) -> list[FleetFix]:
    """Fixes of one region, named by unit key."""
    out = []
    for f in fixes:
        key = stack.key(f.plan.fleet)
        if key == f.plan.fleet:
            out.append(f)
            continue
        plan = replace(
            f.plan,
            fleet=key,
            restore=tuple(replace(d, fleet=key) for d in f.plan.restore),
            left=tuple(replace(d, fleet=key) for d in f.plan.left),
        )
        rollout = keyed_result(f.rollout, key) if f.rollout else None
        out.append(replace(f, plan=plan, rollout=rollout))
    return out


def keyed_report(report: DriftReport, stack: Regional) -> DriftReport:
    """A region's drift report, named by unit key."""
    for entry in report.fleets:
        key = stack.key(entry.fleet)
        entry.fleet = key
        entry.drifts = [replace(d, fleet=stack.key(d.fleet)) for d in entry.drifts]
    if report.remaining is not None:
        report.remaining = [replace(d, fleet=stack.key(d.fleet)) for d in report.remaining]
    report.fixes = keyed_fixes(report.fixes, stack)
    return report


def merged_report(
    project: str, reports: Sequence[DriftReport], order: Sequence[str] = ()
) -> DriftReport:
    """The reports of several regions as one, fleets in ``order`` of their unit keys (a
    single report is returned as it is)."""
    from .drift.remediate import DriftReport

    if len(reports) == 1:
        return reports[0]
    rank = {key: n for n, key in enumerate(order)}
    fleets = sorted((f for r in reports for f in r.fleets), key=lambda f: rank.get(f.fleet, 0))
    remaining = [r.remaining for r in reports if r.remaining is not None]
    calls: dict[str, int] = {}
    for r in reports:
        for op, n in r.api_calls.items():
            calls[op] = calls.get(op, 0) + n
    return DriftReport(
        project,
        fleets,
        min((r.checked_at for r in reports), default=0.0),
        fixes=[f for r in reports for f in r.fixes],
        remaining=[d for ds in remaining for d in ds] if remaining else None,
        api_calls=calls,
    )
