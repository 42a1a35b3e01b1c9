"""Running the steps of a rollout between traffic slots (blue-green, canary).

``SlotRunner`` is the ``RolloutRunner`` of fleets with ``traffic:``: it journals, emits and
fires hooks the same way, and executes the slot steps:

* ``Provision(slot, capacity)``: create the slot's group on the target release (replacing a
  leftover group of another release, which must have no traffic), or grow it; wait until
  ``capacity`` instances of the release are in service.
* ``Gate(slot)``: the fleet's health checks on the slot's instances of the target release.
* ``ShiftTraffic(weights)``: refuse to give weight to a slot whose instances are not all
  healthy in its target group at that moment, write both weights in one Route 53 change, wait
  until INSYNC, fire ``immutable_sdk_traffic_shifted`` with the weights before and after.
* ``Bake(seconds)``, ``Analyze(config)``: watch the health checks on the new slot; the first
  wait after a shift is lengthened by what is left of the record's TTL.
* ``Pause``: wait for the time, or for an operator; once traffic reached the new slot the
  health checks keep watching meanwhile.
* ``Retire(slot)``: refuse a slot that has weight, wait out the TTL since the last shift,
  deregister and drain its instances, force-delete its group.

Operator signals (``immutable-sdk promote`` / ``abort`` from any process, through the state
store) are read at every wait: ``abort`` fails the step at once (the deployer rolls back);
``promote`` ends the current (or next) pause, bake, analysis or keep-previous wait;
``promote --full`` also skips every remaining step up to 100% on the new slot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...aws.fleet import GroupState
from ...aws.session import aws_errors
from ...aws.slots import SlotGroups
from ...aws.traffic import TrafficApi, TrafficSpec
from ...errors import Aborted as Aborted  # re-exported: the traffic deployer's name for it
from ...errors import GateFailed, RolloutFailed, UsageError
from ...lifecycle import (
    Analyze,
    Bake,
    Gate,
    Pause,
    Provision,
    Retire,
    ShiftTraffic,
    Step,
)
from ...plugin import AnalysisSlot, GateTargets
from ...release import Release
from ...state.base import JournalEntry
from ..rollout.runner import POLL_FLOOR, SIGNAL_POLL, RolloutRunner
from ..tick.horizon import OPERATOR, Suspended
from ..transitions import journal_and_notify, shift_status
from .analysis import analyze, analyze_tick

PROMOTE, PROMOTE_FULL, ABORT = "promote", "promote-full", "abort"
SIGNALS = (PROMOTE, PROMOTE_FULL, ABORT)


class _Promoted(Exception):
    """An operator's promote ends the current wait (internal control flow)."""


@dataclass
class Slots:
    """What a slot rollout works on: the traffic record, the slot groups, the new release."""

    traffic: TrafficSpec
    groups: SlotGroups
    routes: TrafficApi
    release: Release | None  # the new release (None when only rolling back)
    target_groups: Mapping[str, str]  # slot -> target group ARN
    load_balancers: Mapping[str, str]  # slot -> load balancer ARN ("" unknown)
    target_slot: str  # the slot of the new release
    source_slot: str | None  # the live slot (None for a new fleet)
    version: int = 0  # the new release's launch template version


@dataclass
class SlotRunner(RolloutRunner):
    slots: Slots | None = None
    keeper: Callable[[], None] | None = None  # renews the fleet's lock (and stops on request)
    rolling_back: bool = False
    full: bool = False  # promote --full: skip to 100% on the new slot
    weights: dict[str, int] = field(default_factory=dict)  # as last read or written
    _promote: bool = False
    _interruptible: bool = False
    _shifted_at: float | None = None
    _shifted_wall: float | None = None  # clock.now() of the last shift (for deadlines)
    _shifted_to_new: bool = False
    _at_full: bool = False
    _skipped_provision: bool = False
    _signals_at: float | None = None

    @property
    def s(self) -> Slots:
        assert self.slots is not None
        return self.slots

    # --- signals and waits -------------------------------------------------------------------

    def beat(self) -> None:
        super().beat()
        if self.keeper is not None:
            self.keeper()
        now = self.ctx.clock.monotonic()
        if self._signals_at is None or now - self._signals_at >= POLL_FLOOR:
            self._signals_at = now
            self.signals()
        if self._promote and self._interruptible:
            self._promote = False
            raise _Promoted

    def signals(self) -> list[str]:
        """Take the operator signals sent to this rollout and act on them (none are left).

        ``abort`` raises Aborted; ``promote`` ends the current or next wait; ``promote-full``
        also skips the remaining steps to 100%. While rolling back, signals are dropped.
        """
        for name in self.state.take_signals(self.info.id):
            self.ctx.emit("rollout.signal", signal=name, ignored=self.rolling_back)
            if self.rolling_back:
                continue
            if name == ABORT:
                raise Aborted("aborted by an operator (immutable-sdk abort)")
            if name in (PROMOTE, PROMOTE_FULL):
                self._promote = True
                if name == PROMOTE_FULL and not self.full:
                    self.full = True  # journaled: a later tick skips the same steps
                    self.state.append_journal(
                        self.info.id, -1, "note", self.ctx.clock.now(), {"note": "promote_full"}
                    )
        return []

    # --- ticks: a rollout taken up where an earlier tick (or a dead process) left it --------

    def restore(self, journal: Sequence[JournalEntry]) -> None:
        """What the runner knows from the journal and the weights read back from Route 53:
        instances that passed a gate, whether traffic reached the new slot, when it last
        moved (the DNS TTL runs from then), a ``promote --full`` taken, a promote not used."""
        share = self.weights.get(self.s.target_slot, 0)
        self._shifted_to_new = share > 0
        self._at_full = share >= 100
        for entry in journal:
            gated = entry.data.get("gated")
            if isinstance(gated, list):
                self.gated |= {str(i) for i in gated}
            if entry.data.get("note") == "promote_full":
                self.full = True
        shifts = [e for e in journal if e.status == "finished" and e.data.get("change")]
        if shifts:
            ago = self.ctx.clock.now() - shifts[-1].at
            self._shifted_at = self.ctx.clock.monotonic() - ago
            self._shifted_wall = shifts[-1].at
        if self.resumed is not None and self.resumed.waiting.get("promote"):
            self._promote = True

    def suspend(self, index: int, exc: Suspended) -> None:
        if self._promote:  # taken from the store but not used yet: the next tick uses it
            exc.detail["promote"] = True
        super().suspend(index, exc)

    def waited(self, key: str) -> Any:
        """What an earlier tick journaled about the current step's wait (None: nothing)."""
        if self._continued and self.resumed is not None:
            return self.resumed.waiting.get(key)
        return None

    def deadline(self, seconds: float) -> tuple[float, float]:
        """(since, until) of a wait of ``seconds`` on the new slot, lengthened by what was
        left of the DNS TTL when it began (as ``apply`` waits it)."""
        since = self.since()
        if self._shifted_wall is None:
            return since, since + seconds
        ttl_end = self._shifted_wall + self.s.traffic.ttl
        return since, since + seconds + max(0.0, ttl_end - since)

    def poll_interval(self) -> float:
        return self.fleet.health.interval

    def look(self) -> None:
        """One poll of the fleet's health checks on the new slot (a tick's look at a bake)."""
        self.look_once(self.slot_targets(self.s.target_slot))

    def interruptible(self, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run a wait that an operator's promote may end early."""
        self._interruptible = True
        try:
            self.beat()
            return work()
        except _Promoted:
            return {"ended_by": "promote"}
        finally:
            self._interruptible = False

    def ttl_left(self) -> float:
        """Seconds until DNS caches may still hold the weights before the last shift."""
        if self._shifted_at is None:
            return 0.0
        return max(0.0, self.s.traffic.ttl - (self.ctx.clock.monotonic() - self._shifted_at))

    # --- observation -------------------------------------------------------------------------

    def slot_groups(self) -> dict[str, GroupState | None]:
        groups = self.s.groups.describe(self.fleet.name)
        report: dict[str, dict[str, Any]] = {}
        for slot, g in groups.items():
            live = [m for m in g.live() if m.lifecycle_state == "InService"] if g else []
            # healthy: the serving release's instances the group finds healthy, and the new
            # release's once they passed a gate
            healthy = [
                m
                for m in live
                if m.health_status == "Healthy"
                and (m.instance_id in self.gated or (m.release and m.release == self.trusted))
            ]
            report[slot] = {
                "release": g.release if g else None,
                "desired": g.desired if g else 0,
                "in_service": len(live),
                "healthy": len(healthy),
                "weight": self.weights.get(slot, 0),
            }
        sample = {
            "desired": sum(int(r["desired"]) for r in report.values()),
            "in_service": sum(int(r["in_service"]) for r in report.values()),
            "healthy": sum(int(r["healthy"]) for r in report.values()),
            "by_release": {
                str(r["release"]): r["in_service"] for r in report.values() if r["release"]
            },
            "slots": report,
        }
        self.ctx.emit("capacity", **sample)
        self.samples.capacity(self, sample)
        return groups

    def slot_targets(self, slot: str) -> Callable[[], GateTargets]:
        def targets() -> GateTargets:
            group = self.slot_groups()[slot]
            members = group.of_release(self.target) if group else []
            return GateTargets(
                fleet=self.fleet.name,
                release=self.target,
                instances=[m.target() for m in members if m.lifecycle_state == "InService"],
                target_groups=group.target_groups if group else (self.s.target_groups[slot],),
            )

        return targets

    # --- steps -------------------------------------------------------------------------------

    def execute(self, step: Step) -> dict[str, Any]:
        # Health checks call AWS through their own clients: botocore errors become AwsError.
        with aws_errors(f"step {step.kind}"):
            return self.slot_step(step)

    def slot_step(self, step: Step) -> dict[str, Any]:
        skipped = self.skip(step)
        if skipped:
            return {"skipped": skipped}
        if isinstance(step, Provision):
            return self.provision(step.slot, step.capacity)
        if isinstance(step, Gate):
            return self.slot_gate(step.slot or self.s.target_slot)
        if isinstance(step, ShiftTraffic):
            return self.shift(dict(step.weights))
        if isinstance(step, Bake):
            return self.bake(step.seconds)
        if isinstance(step, Pause):
            return self.slot_pause(step)
        if isinstance(step, Analyze):
            if self.restoring:  # an analysis judges the new release, never the way back
                return {"skipped": "a rollback is not judged by an analysis"}
            return self.analyze(dict(step.config))
        if isinstance(step, Retire):
            return self.retire_slot(step.slot or "")
        raise UsageError(
            f"fleet {self.fleet.name!r}: strategy {self.info.strategy!r} asked for a "
            f"{step.kind!r} step, which a fleet with traffic slots does not run"
        )

    def skip(self, step: Step) -> str | None:
        """Why ``promote --full`` skips the step (None: run it)."""
        if not self.full or self._at_full or self.rolling_back:
            return None
        target = self.s.target_slot
        if isinstance(step, (Bake, Pause, Analyze)):
            return "promote --full"
        if isinstance(step, ShiftTraffic) and step.weights.get(target, 0) < 100:
            return "promote --full"
        if isinstance(step, Provision):
            self._skipped_provision = step.capacity < self.fleet.capacity.desired
            return "promote --full" if self._skipped_provision else None
        if isinstance(step, Gate) and self._skipped_provision:
            return "promote --full"
        return None

    def provision(self, slot: str, capacity: int) -> dict[str, Any]:
        s = self.s
        group = self.slot_groups()[slot]
        if group is not None and (
            group.release != self.target or group.not_of_release(self.target)
        ):
            weight = self.current_weights().get(slot, 0)
            if weight > 0:
                raise RolloutFailed(
                    f"slot {slot} serves {weight}% of the traffic with release "
                    f"{group.release}; it cannot be replaced (roll back or abort first)"
                )
            self.remove(slot, group)
            group = None
        maximum = max(capacity, self.fleet.capacity.max)
        if s.release is None:
            raise UsageError(f"slot {slot}: nothing to provision while rolling back")
        if group is None:
            before: set[str] = set()
            s.groups.create(
                self.fleet,
                slot,
                s.version,
                subnets=s.release.launch_config["subnets"],
                target_groups=[s.target_groups[slot]],
                release=self.target,
                desired=capacity,
                max_size=maximum,
            )
        else:
            before = {m.instance_id for m in group.of_release(self.target)}
            if group.desired < capacity:
                s.groups.resize(
                    self.fleet.name, slot, desired=capacity, max_size=max(group.max, maximum)
                )
        start = self.ctx.clock.monotonic()
        delay = POLL_FLOOR
        while True:
            group = self.slot_groups()[slot]
            ready = [
                m
                for m in (group.of_release(self.target) if group else [])
                if m.lifecycle_state == "InService"
            ]
            if len(ready) >= capacity:
                fresh = [m.instance_id for m in ready if m.instance_id not in before]
                self.launched += fresh
                self.last_launch = self.ctx.clock.monotonic()
                return {"slot": slot, "capacity": capacity, "launched": fresh}
            elapsed = self.ctx.clock.monotonic() - start
            if elapsed >= self.fleet.health.timeout:
                raise GateFailed(
                    f"slot {slot}: {len(ready)} of {capacity} instance(s) came in service "
                    f"within {self.fleet.health.timeout:g}s",
                    checks=("launch",),
                )
            self.wait(min(delay, self.fleet.health.timeout - elapsed))
            delay = min(delay * 2, self.fleet.health.interval)

    def slot_gate(self, slot: str) -> dict[str, Any]:
        self.health_grace()
        read = self.slot_targets(slot)
        judged: list[GateTargets] = []

        def targets() -> GateTargets:
            judged.append(read())
            return judged[-1]

        reports = self.durable_gate(targets)
        passed = {t.instance_id for t in judged[-1].instances}  # what the last poll passed
        self.gated |= passed
        checks = {n: r.status.value for n, r in reports.items()}
        return {"slot": slot, "checks": checks, "gated": sorted(passed)}

    def current_weights(self) -> dict[str, int]:
        self.weights = self.s.routes.weights(self.s.traffic)
        return dict(self.weights)

    def healthy(self, slot: str) -> str | None:
        """Why ``slot`` may not receive traffic now (None: every instance is healthy)."""
        group = self.slot_groups()[slot]
        live = [m for m in group.live() if m.lifecycle_state == "InService"] if group else []
        if not live:
            return f"slot {slot} has no instance in service"
        states = self.s.groups.target_states(
            group.target_groups if group else (), [m.instance_id for m in live]
        )
        bad = {i: states.get(i, "unregistered") for i in (m.instance_id for m in live)}
        bad = {i: st for i, st in bad.items() if st != "healthy"}
        if bad:
            what = ", ".join(f"{i} {st}" for i, st in sorted(bad.items()))
            return f"slot {slot} is not healthy in its target group: {what}"
        return None

    def shift(self, weights: dict[str, int]) -> dict[str, Any]:
        s = self.s
        wanted = {slot: int(weights.get(slot, 0)) for slot in s.traffic.slots}
        before = self.current_weights()
        if before == wanted:
            self._note_shift(wanted)
            return {"weights": wanted, "changed": False}
        for slot, weight in wanted.items():
            if weight > 0:
                problem = self.healthy(slot)
                if problem:
                    raise GateFailed(f"refusing to shift traffic: {problem}", checks=("shift",))
        change = s.routes.set_weights(s.traffic, wanted)
        self.weights = dict(wanted)
        self._shifted_at = self.ctx.clock.monotonic()
        self._shifted_wall = self.ctx.clock.now()
        self._note_shift(wanted)
        self.ctx.emit("traffic.shifted", before=before, after=wanted, change=change)
        journal_and_notify(  # notified only by the process that journals it (transitions)
            self.state,
            self.plugins.hook,
            self.info,
            self.current,
            shift_status(wanted),
            self.ctx.clock.now(),
            {"before": before, "after": wanted},
            "immutable_sdk_traffic_shifted",
            before=before,
            after=wanted,
        )
        self.slot_groups()
        return {"weights": wanted, "before": before, "change": change}

    def _note_shift(self, wanted: Mapping[str, int]) -> None:
        new = self.s.target_slot
        if not self.rolling_back and wanted.get(new, 0) > 0:
            self._shifted_to_new = True
        if not self.rolling_back and wanted.get(new, 0) >= 100:
            self._at_full = True

    def bake(self, seconds: float) -> dict[str, Any]:
        extra = self.ttl_left()
        # after all traffic moved: the previous slot is kept warm meanwhile (keep_previous)
        kind = "keep_previous" if self._at_full and not self.rolling_back else "bake"

        def work() -> dict[str, Any]:
            since, until = self.deadline(seconds)
            if self.ctx.horizon.unlimited:
                left = seconds + extra if not self._continued else until - self.ctx.clock.now()
                self.gates().bake(left, self.slot_targets(self.s.target_slot))
                return {"seconds": seconds}
            self.look()
            now = self.ctx.clock.now()
            if now >= until:
                return {"seconds": seconds}
            next_at = min(until, now + self.fleet.health.interval)
            raise Suspended(next_at, kind, {"since": since, "until": until})

        return {**self.interruptible(work), "dns_ttl_wait": extra}

    def slot_pause(self, step: Pause) -> dict[str, Any]:
        if not self._continued:
            self.ctx.emit("rollout.paused", manual=step.manual, seconds=step.seconds)
        watch = self._shifted_to_new
        start = self.ctx.clock.monotonic()

        seconds = self.left(step.seconds)

        def work() -> dict[str, Any]:
            if not self.ctx.horizon.unlimited:
                return self.pause_tick(step, watch)
            while True:
                remaining = seconds - (self.ctx.clock.monotonic() - start)
                if not step.manual and remaining <= 0:
                    return {"seconds": step.seconds}
                if watch:  # traffic reaches the new release: keep judging it, at its pace
                    chunk = self.fleet.health.interval
                    chunk = chunk if step.manual else min(chunk, remaining)
                    self.gates().bake(chunk, self.slot_targets(self.s.target_slot))
                else:
                    self.wait(SIGNAL_POLL if step.manual else min(SIGNAL_POLL, remaining))

        return self.interruptible(work)

    def pause_tick(self, step: Pause, watch: bool) -> dict[str, Any]:
        """A tick's pause: one look at the new slot when it has traffic, then suspended until
        the deadline (or, manual, until promote; still looked at every interval)."""
        if watch:
            self.look()
        since, now = self.since(), self.ctx.clock.now()
        poll = now + self.fleet.health.interval if watch else None
        if step.manual:
            raise Suspended(poll, OPERATOR, {"since": since})
        until = since + step.seconds
        if now >= until:
            return {"seconds": step.seconds}
        raise Suspended(min(until, poll or until), "pause", {"since": since, "until": until})

    def analyze(self, config: dict[str, Any]) -> dict[str, Any]:
        if not self.ctx.horizon.unlimited:
            return analyze_tick(self, config, self.plugins.analysis_providers)
        return analyze(self, config, self.plugins.analysis_providers)

    # --- what the analysis step needs (``analysis.AnalysisHost``) ----------------------------

    def watch(self, seconds: float) -> None:
        self.gates().bake(seconds, self.slot_targets(self.s.target_slot))

    def analysis_slots(self) -> tuple[AnalysisSlot, AnalysisSlot | None]:
        source = self.s.source_slot
        canary = self.analysis_slot("canary", self.s.target_slot, self.target)
        if source is None:
            return canary, None
        return canary, self.analysis_slot("baseline", source, self.info.from_release)

    def analysis_slot(self, role: str, slot: str, release: str | None) -> AnalysisSlot:
        s = self.s
        return AnalysisSlot(
            role=role,
            slot=slot,
            fleet=self.fleet.name,
            release=release,
            region=self.ctx.region,
            auto_scaling_group=s.groups.group_name(self.fleet.name, slot),
            target_group_arn=s.target_groups[slot],
            load_balancer_arn=s.load_balancers.get(slot, ""),
        )

    def retire_slot(self, slot: str) -> dict[str, Any]:
        weight = self.current_weights().get(slot, 0)
        if weight > 0:
            raise RolloutFailed(
                f"refusing to retire slot {slot}: it still has {weight}% of traffic"
            )
        left = self.ttl_left()
        if left > 0 and not self.ctx.horizon.unlimited:
            now = self.ctx.clock.now()
            raise Suspended(now + left, "ttl", {"since": self.since(), "until": now + left})
        if left > 0:
            self.ctx.emit("traffic.ttl_wait", seconds=left, slot=slot)
            self.wait(left)
        group = self.slot_groups()[slot]
        if group is None:
            return {"slot": slot, "retired": []}
        ids = self.remove(slot, group)
        return {"slot": slot, "retired": ids}

    def remove(self, slot: str, group: GroupState) -> list[str]:
        """Deregister and drain a slot's instances, then force-delete its group."""
        ids = [m.instance_id for m in group.live()]
        if ids and group.target_groups:
            self.api.deregister(group.target_groups, ids)
            self.drain(group.target_groups, ids)
        self.s.groups.delete(self.fleet.name, slot, self.ctx.clock, self.beat)
        self.retired += ids
        self.slot_groups()
        return ids
