"""Rolling fleets with traffic slots: blue/green and canary releases behind weighted DNS.

``SlotDeployer`` is ``FleetDeployer``'s counterpart for fleets with ``traffic:``. The live slot
is the one Route 53 gives the most weight to; a release goes to the other (idle) slot, through
the fleet's strategy (``blue-green``, ``canary``), and ends with all traffic on it and the
previous slot retired. One ``apply`` does all of it, ``keep_previous`` included: the wait runs
on the engine's clock with the fleet's lock renewed throughout, so an operator can ``promote``
(retire the previous slot now) or ``abort`` (roll back) from another process meanwhile.

Failure handling. A failed gate, a failed bake or analysis (health check, alarm, metrics), a
refused traffic shift, an AWS error or ``immutable-sdk abort`` rolls the release back:

1. all traffic back on the previous slot in one Route 53 change, after checking that its
   instances are healthy in its target group (a no-op when it still has all the traffic);
2. the record's TTL waited out, then the new slot's instances deregistered, drained and its
   group force-deleted; the failed release's launch template version deleted.

For a fleet's first release there is no previous slot: the records are removed and the new
group deleted, with the launch template. If the previous slot is not healthy, rolling back
stops before touching traffic (the rollout ends ``failed``, both slots left for a person).
With ``rollback: {automatic: false}`` a failure leaves everything as it is (``failed``); an
``abort`` rolls back regardless.

Unfinished rollouts. A slot rollout that a reconcile tick suspended, or whose process died,
goes on step by step when the spec still wants its release (``continue_rollout``): the
rollout record keeps its planned steps and slots, the journal says which steps finished (and
when a wait began: a bake, pause, analysis window, TTL or keep-previous wait keeps its
deadline), and the weights are read back from Route 53. The step it stopped in runs again
from what AWS shows: each slot step is safe to repeat (a provision adopts its group, a shift
to the weights already set changes nothing, a retire finds its group gone). When the spec
wants another release meanwhile, the next apply closes it (outcome ``superseded``) and starts
over from what it finds: traffic left split between the slots goes back to the slot the
interrupted rollout moved it from (after checking it is healthy); a leftover group of another
release in the idle slot is replaced; and when all traffic already reached the new release,
the idle slot is simply retired.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from ...aws.fleet import GroupState
from ...aws.network import resolve_target_groups
from ...aws.slots import SlotGroups, live_groups, live_slot
from ...aws.traffic import SLOTS, TrafficApi, TrafficSpec
from ...errors import (
    ImmutableSdkError,
    StateError,
    UsageError,
)
from ...lifecycle import (
    Phase,
    Retire,
    ShiftTraffic,
    Step,
    step_from_dict,
)
from ...plugin import (
    TAG_RELEASE,
    RolloutChange,
    RolloutInfo,
    Strategy,
)
from ...release import Release
from ...results import FleetResult, InstanceCounts, PlanItem
from ...spec.model import FleetSpec
from ...state.base import JournalEntry, RolloutRecord
from ..analysis.report import last_analysis
from ..rollout.base import FAILURES, BaseDeployer, start_rollout
from ..rollout.holds import quarantine_failure
from ..rollout.locks import LockKeeper
from ..rollout.resume import STEP_STATUSES
from ..rollout.runner import Resumed, new_rollout_id
from .runner import Aborted, SlotRunner, Slots


@dataclass
class SlotDeployer(BaseDeployer):
    """Rolls a fleet with traffic slots: a release to the idle slot, then traffic moved."""

    @property
    def groups(self) -> SlotGroups:
        return SlotGroups(self.fleets)

    def routes(self, heartbeat: Callable[[], None] | None = None) -> TrafficApi:
        return TrafficApi(self.ctx.session, self.clock, heartbeat or (lambda: None))

    def live_group(self, fleet: FleetSpec) -> GroupState | None:
        return self.live_groups([fleet])[fleet.name]

    def status(self, fleet: FleetSpec) -> dict[str, Any]:
        return {
            "traffic": self.traffic_status(fleet),
            "analysis": last_analysis(self.state, fleet.name),
        }

    # --- reading -----------------------------------------------------------------------------

    def live_groups(self, fleets: list[FleetSpec]) -> dict[str, GroupState | None]:
        """Fleet -> its live slot's group (None when the fleet has none yet)."""
        if not fleets:
            return {}
        return live_groups(self.groups, self.routes(), fleets)

    def traffic_status(self, fleet: FleetSpec) -> dict[str, Any]:
        """Weights and, per slot, release, capacity and healthy targets (for ``status``)."""
        traffic = TrafficSpec.of(fleet)
        weights = self.routes().weights(traffic)
        groups = self.groups.describe(fleet.name)
        slots: dict[str, Any] = {}
        for slot in SLOTS:
            g = groups[slot]
            live = [m for m in g.live() if m.lifecycle_state == "InService"] if g else []
            states = self.groups.target_states(
                g.target_groups if g else (), [m.instance_id for m in live]
            )
            slots[slot] = {
                "weight": weights.get(slot),
                "exists": g is not None,
                "release": g.release if g else None,
                "desired": g.desired if g else 0,
                "in_service": len(live),
                "other": len(g.live()) - len(live) if g else 0,
                "healthy": sum(1 for s in states.values() if s == "healthy"),
            }
        return {
            "record": traffic.record,
            "live": live_slot(weights, groups),
            "weights": weights,
            "slots": slots,
        }

    # --- scale and destroy -------------------------------------------------------------------

    def scale(self, fleet: FleetSpec, item: PlanItem, keeper: LockKeeper) -> FleetResult:
        live = self.live_groups([fleet])[fleet.name]
        if live is None:
            raise UsageError(f"fleet {fleet.name!r} has no live slot to scale")
        cap = fleet.capacity
        ctx = self.ctx.scoped(fleet=fleet.name)
        ctx.emit("fleet.scaling", min=cap.min, desired=cap.desired, max=cap.max)
        self.fleets.update_group(
            live.fleet, min_size=cap.min, desired=cap.desired, max_size=cap.max
        )
        return FleetResult(fleet.name, "scale", "scaled", item.current_release, item.release)

    def destroy(self, item: PlanItem, keeper: LockKeeper) -> FleetResult:
        """Delete a dropped fleet's groups (its slot groups too) and its launch template.

        The weighted records are left: the spec that named them is gone.
        """
        self.ctx.scoped(fleet=item.fleet).emit("fleet.destroying", fleet=item.fleet)
        for slot, group in self.groups.describe(item.fleet).items():
            if group is not None:
                ids = [m.instance_id for m in group.live()]
                if ids and group.target_groups:
                    self.fleets.deregister(group.target_groups, ids)
                self.groups.delete(item.fleet, slot, self.clock, keeper)
        self.fleets.delete_group(item.fleet)
        return FleetResult(item.fleet, "destroy", "destroyed", item.current_release)

    # --- rolling out -------------------------------------------------------------------------

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
        """Roll ``fleet`` to ``release`` in its idle slot; roll back on failure.

        ``replace`` is accepted for symmetry with FleetDeployer: a slot release replaces every
        instance anyway. ``abort_unfinished`` (``apply --abort-unfinished``): a rollout a dead
        process left is rolled back (see ``abort_unfinished``) instead of repaired and
        continued, and this apply ends there for the fleet.
        """
        pending = self.state.unfinished_rollout(fleet.name)
        if pending is not None and abort_unfinished:
            return self.abort_unfinished(fleet, pending, keeper)
        if pending is not None and pending.phase == Phase.ROLLING_BACK.value:
            # It failed and was rolling back: finish that, never roll forward again.
            reason = pending.error or "the rollout was rolling back"
            return self.abort_unfinished(fleet, pending, keeper, reason=reason, action=action)
        if pending is not None and pending.to_release == release.id:
            position = slot_position(self.state.journal(pending.id), pending)
            if position is not None:  # the same release: go on step by step, never over
                return self.continue_rollout(fleet, release, pending, position, action, keeper)
        now = self.clock.now()
        rollout_id = new_rollout_id(now)
        traffic = TrafficSpec.of(fleet)
        routes = self.routes(keeper)
        weights = routes.weights(traffic)
        groups = self.groups.describe(fleet.name)
        interrupted_from = pending.data.get("source_slot") if pending else None
        live = live_slot(weights, groups, prefer=interrupted_from)
        live_group = groups[live] if live else None
        previous = live_group.release if live_group else None
        target = next(s for s in SLOTS if s != live)
        slots = self.slots_between(traffic, routes, release, target, live)
        strategy = self.strategy(fleet)
        change = RolloutChange(
            fleet=fleet,
            new_release=release.id,
            current_release=previous,
            current_instances=len(live_group.live()) if live_group else 0,
            desired=fleet.capacity.desired,
            target_slot=target,
            source_slot=live,
        )
        steps, home = self.plan_steps(strategy, change, weights, groups, replace)
        superseded = self.supersede(fleet.name, rollout_id, now)
        info = RolloutInfo(
            id=rollout_id,
            project=self.spec.name,
            fleet=fleet.name,
            strategy=fleet.strategy.type,
            from_release=previous,
            to_release=release.id,
            region=self.ctx.region,
        )
        start_rollout(
            self.state,
            info,
            release,
            steps,
            self.owner,
            now,
            {
                "record": traffic.record,
                "target_slot": target,
                "source_slot": live,
                "superseded": superseded,
                "home": home,  # the slot that serves the release at the end
            },
        )
        self.announce(info, action, steps, target_slot=target, source_slot=live, weights=weights)
        runner = self.runner(
            fleet,
            info,
            keeper,
            slots,
            target=release.id,
            trusted=previous,
            weights=dict(weights),
            restoring=action == "rollback",  # back to a known-good release: gate.restoring
        )
        result = FleetResult(fleet.name, action, "promoted", previous, release.id, rollout_id)
        return self.run_steps(fleet, release, info, runner, steps, home, result, keeper)

    def continue_rollout(
        self,
        fleet: FleetSpec,
        release: Release,
        record: RolloutRecord,
        position: tuple[int, Resumed | None],
        action: str,
        keeper: LockKeeper,
    ) -> FleetResult:
        """Take the unfinished ``record`` up at step ``position`` of its planned steps (a
        reconcile tick suspended it, or its process died): the slots it moved between and
        its journal say where it is, Route 53 gives the weights; nothing is started over."""
        target, source = record.data.get("target_slot"), record.data.get("source_slot")
        if target not in SLOTS or source not in (*SLOTS, None):
            raise StateError(f"rollout {record.id} does not record the slots it moved between")
        index, resumed = position
        traffic = TrafficSpec.of(fleet)
        routes = self.routes(keeper)
        slots = self.slots_between(traffic, routes, release, str(target), source)
        weights = routes.weights(traffic)
        info = RolloutInfo(
            id=record.id,
            project=self.spec.name,
            fleet=fleet.name,
            strategy=record.strategy,
            from_release=record.from_release,
            to_release=record.to_release,
            region=self.ctx.region,
        )
        journal = self.state.journal(record.id)
        now = self.clock.now()
        self.state.update_rollout(record.id, owner=self.owner)
        note = {"note": "continued", "owner": self.owner, "at_step": index, "weights": weights}
        self.state.append_journal(record.id, -1, "note", now, note)
        self.ctx.scoped(fleet=fleet.name, rollout=record.id).emit(
            "rollout.resumed", how="continued", rollouts=[record.id], step=index
        )
        runner = self.runner(
            fleet,
            info,
            keeper,
            slots,
            target=release.id,
            trusted=record.from_release,
            weights=dict(weights),
            index=index,
            resumed=resumed,
            restoring=action == "rollback",
        )
        runner.restore(journal)
        steps = [step_from_dict(s) for s in record.steps[index:]]
        home = str(record.data.get("home") or target)
        result = FleetResult(
            fleet.name, action, "promoted", record.from_release, release.id, record.id
        )
        return self.run_steps(fleet, release, info, runner, steps, home, result, keeper)

    def run_steps(
        self,
        fleet: FleetSpec,
        release: Release,
        info: RolloutInfo,
        runner: SlotRunner,
        steps: list[Step],
        home: str,
        result: FleetResult,
        keeper: LockKeeper,
    ) -> FleetResult:
        """Run the rollout's ``steps``, then size and tag the ``home`` slot and record the
        outcome; a failure rolls back (or, ``automatic: false``, ends ``failed``)."""
        previous, rollout_id = info.from_release, info.id
        try:
            runner.s.version = self.fleets.ensure_version(fleet, release, rollout_id)
            self.state.update_rollout(rollout_id, phase=Phase.SHIFTING.value)
            runner.run(steps)
            cap = fleet.capacity
            self.groups.resize(
                fleet.name, home, min_size=cap.min, desired=cap.desired, max_size=cap.max
            )
            self.groups.tag(fleet.name, home, {TAG_RELEASE: release.id})
        except FAILURES as exc:
            reason = str(exc)
            back = partial(self.roll_back, fleet, info, runner, previous, release.id)
            forced = isinstance(exc, Aborted)  # an operator's abort rolls back regardless
            self.fail(
                fleet,
                info,
                result,
                keeper,
                exc,
                lambda: back(reason, result),
                action=result.action,
                force=forced,
            )
            return self._with_runner(result, runner)
        self.succeed(info, result, keeper)  # not while another release still has traffic
        return self._with_runner(result, runner)

    def slots_between(
        self,
        traffic: TrafficSpec,
        routes: TrafficApi,
        release: Release | None,
        target: str,
        source: str | None,
    ) -> Slots:
        """What a rollout from slot ``source`` to ``target`` works on (``release`` None: it
        only rolls back). Resolving the load balancers and target groups fails early, before
        anything is recorded, when one is missing."""
        endpoints = routes.endpoints(traffic)
        refs = [traffic.slots[s].target_group for s in SLOTS]
        arns = resolve_target_groups(self.ctx.client("elbv2"), refs)
        return Slots(
            traffic=traffic,
            groups=self.groups,
            routes=routes,
            release=release,
            target_groups=dict(zip(SLOTS, arns, strict=True)),
            load_balancers={s: endpoints[s].arn for s in SLOTS},
            target_slot=target,
            source_slot=source,
        )

    def runner(
        self, fleet: FleetSpec, info: RolloutInfo, keeper: LockKeeper, slots: Slots, **options: Any
    ) -> SlotRunner:
        """The runner of the rollout ``info`` (``options``: SlotRunner's own fields)."""
        return SlotRunner(
            fleet=fleet,
            plugins=self.plugins,
            ctx=self.ctx.scoped(fleet=fleet.name, rollout=info.id),
            api=self.fleets,
            state=self.state,
            info=info,
            keeper=keeper,
            slots=slots,
            **options,
        )

    @staticmethod
    def plan_steps(
        strategy: Strategy,
        change: RolloutChange,
        weights: Mapping[str, int],
        groups: Mapping[str, GroupState | None],
        replace: frozenset[str],
    ) -> tuple[list[Step], str]:
        """The strategy's steps, after repairing what an interrupted rollout left, and the
        slot that serves the release at the end.

        Traffic split between the slots goes back to the live slot first. When the live slot
        runs the release already (a rollout interrupted while it kept the previous slot
        warm), the only step left is retiring the idle slot.
        """
        live, target = change.source_slot, change.target_slot
        assert target is not None
        serving = groups[live] if live else None
        idle = groups[target]
        if (
            serving is not None
            and serving.release == change.new_release
            and not serving.not_of_release(change.new_release)
            and not replace
            and not weights.get(target, 0)
        ):
            assert live is not None
            return ([Retire(len(idle.live()), slot=target)] if idle else []), live
        steps: list[Step] = strategy.plan(change)
        if live and weights.get(target, 0) > 0:
            steps = [ShiftTraffic({live: 100, target: 0}), *steps]
        return steps, target

    def supersede(self, fleet: str, by: str, now: float) -> list[str]:
        """Close the fleet's unfinished rollouts: this one repairs and replaces them."""
        closed: list[str] = []
        state = self.state
        while (record := state.unfinished_rollout(fleet)) is not None and len(closed) < 50:
            state.update_rollout(
                record.id,
                outcome="superseded",
                finished_at=now,
                error=f"unfinished; superseded by rollout {by}",
            )
            closed.append(record.id)
        return closed

    @staticmethod
    def _with_runner(result: FleetResult, runner: SlotRunner) -> FleetResult:
        result.launched = list(runner.launched)
        result.retired = list(runner.retired)
        return result

    def abort_unfinished(
        self,
        fleet: FleetSpec,
        record: RolloutRecord,
        keeper: LockKeeper,
        *,
        reason: str = "aborted by an operator (immutable-sdk abort) after its process stopped",
        action: str = "abort",
    ) -> FleetResult:
        """Roll back a slot rollout that no process runs any more (``abort`` when its owner
        died, or a rollback that did not finish): all traffic to the slot it moved traffic
        from, after checking that slot is healthy, then the slot it rolled out to retired;
        with no previous slot, the records, the new group and the launch template go. The
        rollout ends ``rolled_back`` (or stays unfinished, rolling back, if that fails)."""
        target, source = record.data.get("target_slot"), record.data.get("source_slot")
        if target not in SLOTS or source not in (*SLOTS, None):
            raise StateError(f"rollout {record.id} does not record the slots it moved between")
        traffic = TrafficSpec.of(fleet)
        slots = self.slots_between(traffic, self.routes(keeper), None, str(target), source)
        info = RolloutInfo(
            id=record.id,
            project=self.spec.name,
            fleet=fleet.name,
            strategy=record.strategy,
            from_release=record.from_release,
            to_release=record.to_release,
            region=self.ctx.region,
        )
        runner = self.runner(
            fleet, info, keeper, slots, target=record.to_release, index=len(record.steps)
        )
        # a rollback an earlier tick began: the DNS TTL still runs from its last shift
        runner.restore(self.state.journal(record.id))
        result = FleetResult(
            fleet.name, action, "rolled_back", record.from_release, record.to_release, record.id
        )
        if action == "abort":  # an operator's decision: the release stays out (holds.py)
            quarantine_failure(self.state, info, action, Aborted(reason), self.clock.now())
        self.roll_back(fleet, info, runner, record.from_release, record.to_release, reason, result)
        return self._with_runner(result, runner)

    def roll_back(
        self,
        fleet: FleetSpec,
        info: RolloutInfo,
        runner: SlotRunner,
        previous: str | None,
        failed: str,
        reason: str,
        result: FleetResult,
    ) -> None:
        """All traffic back to the previous slot first, then the new slot's group retired."""
        s = runner.s
        runner.ctx.emit("rollback.started", reason=reason, to_release=previous)
        self.begin_rollback(info, reason)
        runner.rolling_back = True
        runner.restoring = True  # the signal that failed the release must not block the way back
        runner.target = previous or ""
        try:
            groups = self.groups.describe(fleet.name)
            new_group = groups[s.target_slot]
            restore = s.source_slot if s.source_slot and groups[s.source_slot] else None
            if restore is None:  # a fleet that never served: its records go too
                s.routes.delete_records(s.traffic)
            change = RolloutChange(
                fleet=fleet,
                new_release=previous or failed,
                current_release=failed,
                current_instances=len(new_group.live()) if new_group else 0,
                desired=fleet.capacity.desired,
                rollback=True,
                target_slot=restore,
                source_slot=s.target_slot,
            )
            runner.run(self.strategy(fleet).plan(change))
            if restore is None:
                self.fleets.delete_group(fleet.name)  # no slot group left: the template too
            else:
                # the slot that serves again gets the spec's bounds: a rollout that died
                # between its last step and sizing its home slot left that slot at min 0
                cap = fleet.capacity
                self.groups.resize(
                    fleet.name, restore, min_size=cap.min, desired=cap.desired, max_size=cap.max
                )
                self.delete_failed_version(fleet.name, failed, previous)
        except ImmutableSdkError as exc:
            self.settle_rollback(info, result, reason, previous, exc)
            return
        self.settle_rollback(info, result, reason, previous, None)


def slot_position(
    journal: Sequence[JournalEntry], record: RolloutRecord
) -> tuple[int, Resumed | None] | None:
    """Where a slot rollout goes on: the step it stopped in (begun, not finished: a tick
    suspended it there, or its process died; every slot step can be taken up again, as each
    starts from what AWS shows), or the one after the last finished. None when a step failed
    (its rollback is another matter) or the journal names no planned step."""
    last = next(
        (
            e
            for e in reversed(journal)
            if 0 <= e.step_index < len(record.steps) and e.status in STEP_STATUSES
        ),
        None,
    )
    if last is None:
        return (0, None) if record.steps else None
    if last.status == "finished":
        return last.step_index + 1, None
    if last.status != "started":
        return None
    index = last.step_index
    waits = [e for e in journal if e.step_index == index and e.data.get("note") == "waiting"]
    return index, Resumed(index, last.at, dict(waits[-1].data) if waits else {})


def count_other_slots(instances: dict[str, InstanceCounts], traffic: Mapping[str, Any]) -> None:
    """Add the instances of the slots other than the live one to ``status``'s per-release
    counts (which come from the live slot's group): a paused blue/green runs both."""
    for name, slot in traffic["slots"].items():
        if name == traffic.get("live") or not slot.get("exists"):
            continue
        fresh = InstanceCounts(in_service=0, other=0)
        counts = instances.setdefault(slot["release"] or "unknown", fresh)
        counts["in_service"] += int(slot["in_service"])
        counts["other"] += int(slot.get("other", 0))
