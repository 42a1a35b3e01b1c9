"""A fleet's rollout before it runs: its steps and waits, the peak extra instances, and a
minimum duration (``plan --steps``).

The steps are the strategy's own (``Strategy.plan``) for the plan item's change: a create
(first release) or a replacement of the instances running now (slot fleets: traffic moves from
the first slot by name to the other; the plan does not read the weights). Each step's *wait*
is what the spec makes it last at least: a bake or pause, an analysis window or an alarm
watch, the DNS TTL a bake or a retirement waits out after a traffic shift, the health check
grace after a launch.
Launches and gates last as long as instances take from launch to healthy: the median of the
fleet's past rollouts (from the journal: a launch step's start to its gate's end), or unknown
before the first. Deregistration waits (draining) last up to the target groups' delay, which
AWS holds, not the spec: they are listed, not added.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ...errors import ImmutableSdkError
from ...lifecycle import Analyze, Bake, Gate, Launch, Pause, Provision, Retire, ShiftTraffic, Step
from ...plugin import RolloutChange
from ...plugins import Plugins
from ...spec.model import FleetSpec
from ...state.base import StateStore
from ...units import parse_duration

if TYPE_CHECKING:
    from ...results import Plan
    from ..engine import Engine
    from ..waves import Unit

HISTORY = 20  # past rollouts of a fleet looked at for its launch-to-healthy time
NEW, OLD = "r-new", "r-current"


@dataclass(frozen=True)
class StepWait:
    index: int
    kind: str
    text: str
    wait: float  # seconds the spec makes this step last at least
    why: str = ""  # what the wait is made of ("bake 5m + TTL 60s")
    operator: bool = False  # waits for `immutable-sdk promote`
    launches: bool = False  # lasts as long as instances take to become healthy
    drains: bool = False  # waits for targets to deregister (up to the delay)


@dataclass(frozen=True)
class FleetSchedule:
    unit: str
    action: str
    strategy: str
    steps: tuple[StepWait, ...]
    desired: int
    peak_instances: int  # at most at once during the rollout
    peak_extra: int  # above desired capacity: the surge, or a whole second slot
    spec_waits: float  # the sum of the steps' waits
    launch_to_healthy: float | None  # median of past rollouts; None: no history
    samples: int  # launches that median is made of
    minimum: float  # spec_waits + launches x launch_to_healthy (0 when unknown)
    operator_pauses: int
    error: str | None = None  # the strategy refused the change (a spec that cannot work)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def change_for(
    fleet: FleetSpec, action: str, instances: int, desired: int | None = None
) -> RolloutChange:
    """The change a plan item's action means, as the strategy sees it (``desired``: the
    capacity the rollout aims for, by default the spec's; ``desired: managed`` fleets aim
    for the group's live desired capacity, which the plan item carries)."""
    slots = sorted((fleet.traffic or {}).get("slots", {}) or {}) if fleet.traffic else []
    create = action == "create" or instances == 0
    current = 0 if create else max(instances, 1)
    target = slots[1] if slots and not create else (slots[0] if slots else None)
    return RolloutChange(
        fleet=fleet,
        new_release=NEW,
        current_release=None if create else OLD,
        current_instances=current,
        desired=fleet.capacity.desired if desired is None else desired,
        target_slot=target,
        source_slot=(slots[0] if slots and not create else None),
    )


def planned_steps(plugins: Plugins, fleet: FleetSpec, change: RolloutChange) -> list[Step]:
    entry = plugins.strategies.get(fleet.strategy.type)
    return list(entry.factory(fleet.strategy.config).plan(change))


def peak(steps: Sequence[Step], current: int) -> int:
    """The most instances alive at once (old and new release) while the steps run."""
    old, new, most = current, 0, current
    for step in steps:
        if isinstance(step, Launch):
            new += step.count
        elif isinstance(step, Provision):
            new = max(new, step.capacity)
        elif isinstance(step, Retire):
            old = 0 if step.slot else max(0, old - step.count)
        most = max(most, old + new)
    return most


def waits(fleet: FleetSpec, steps: Sequence[Step]) -> list[StepWait]:
    ttl = float(((fleet.traffic or {}).get("route53") or {}).get("ttl", 0) or 0)
    grace = fleet.health.grace
    shifted = False  # a shift happened whose TTL the next wait must cover
    out = []
    for i, step in enumerate(steps):
        wait, why, operator, launches, drains = 0.0, "", False, False, False
        extra = ttl if shifted and ttl else 0.0
        if isinstance(step, (Launch, Provision)):
            launches = True
            why = "until the instances are in service"
        elif isinstance(step, Gate):
            launches = True
            wait, why = grace, (f"health check grace {grace:g}s" if grace else "health checks")
        elif isinstance(step, Bake):
            wait = step.seconds + extra
            why = f"bake {step.seconds:g}s" + (f" + TTL {extra:g}s" if extra else "")
            shifted = False
        elif isinstance(step, Pause):
            operator = step.manual
            wait = step.seconds
            why = "until an operator runs promote" if step.manual else f"pause {step.seconds:g}s"
        elif isinstance(step, Analyze):
            config = dict(step.config)
            length = parse_duration(config.get("window") or config.get("duration") or 0)
            wait = length + extra
            kind = "window" if config.get("type") == "cloudwatch-metrics" else "alarm watch"
            why = f"{kind} {length:g}s" + (f" + TTL {extra:g}s" if extra else "")
            shifted = False
        elif isinstance(step, ShiftTraffic):
            shifted = True
            why = "weights written, INSYNC"
        elif isinstance(step, Retire):
            drains = bool(fleet.target_groups or fleet.traffic)
            if step.slot and shifted and ttl:
                wait, why = ttl, f"TTL {ttl:g}s, then deregistration"
                shifted = False
            else:
                why = "deregistration (up to the target group's delay)" if drains else ""
        out.append(StepWait(i, step.kind, step.describe(), wait, why, operator, launches, drains))
    return out


def launch_to_healthy(state: StateStore, unit: str) -> list[float]:
    """Seconds from each launch (or provision) step's start to the end of the gate after it,
    in the fleet's recent rollouts."""
    times: list[float] = []
    for record in state.rollouts(unit, limit=HISTORY):
        started: dict[int, float] = {}
        kinds: dict[int, str] = {}
        launch_at: float | None = None
        for entry in state.journal(record.id):
            if entry.step_index < 0:
                continue
            if entry.status == "started":
                kinds[entry.step_index] = str(entry.data.get("kind"))
                started[entry.step_index] = entry.at
                if kinds[entry.step_index] in ("launch", "provision"):
                    launch_at = entry.at
            elif entry.status == "finished" and kinds.get(entry.step_index) == "gate":
                if launch_at is not None and "skipped" not in entry.data:
                    times.append(entry.at - launch_at)
                launch_at = None
    return times


def schedule(
    plugins: Plugins,
    fleet: FleetSpec,
    unit: str,
    action: str,
    instances: int,
    state: StateStore | None,
    desired: int | None = None,
) -> FleetSchedule:
    change = change_for(fleet, action, instances, desired)
    desired = change.desired
    history = launch_to_healthy(state, unit) if state is not None else []
    median = statistics.median(history) if history else None
    try:
        steps = planned_steps(plugins, fleet, change)
    except ImmutableSdkError as exc:
        return FleetSchedule(
            unit,
            action,
            fleet.strategy.type,
            (),
            desired,
            0,
            0,
            0.0,
            median,
            len(history),
            0.0,
            0,
            error=str(exc),
        )
    rows = waits(fleet, steps)
    spec_waits = sum(r.wait for r in rows)
    launches = sum(1 for s in steps if isinstance(s, (Launch, Provision)))
    most = peak(steps, change.current_instances)
    notes = []
    if median is None and launches:
        notes.append(
            f"{launches} launch(es) of unknown length: no past rollout of {unit} to measure "
            "launch-to-healthy from"
        )
    drains = sum(1 for r in rows if r.drains)
    if drains:
        notes.append(f"{drains} deregistration wait(s) of up to the target groups' delay each")
    pauses = sum(1 for r in rows if r.operator)
    if pauses:
        notes.append(f"{pauses} pause(s) until an operator runs promote, not counted")
    return FleetSchedule(
        unit=unit,
        action=action,
        strategy=fleet.strategy.type,
        steps=tuple(rows),
        desired=desired,
        peak_instances=most,
        peak_extra=max(0, most - desired),
        spec_waits=spec_waits,
        launch_to_healthy=median,
        samples=len(history),
        # a launch-to-healthy time includes the gate's grace, which spec_waits holds already
        minimum=spec_waits + launches * max(0.0, (median or 0.0) - fleet.health.grace),
        operator_pauses=pauses,
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class PlanSchedule:
    """Every changed unit's schedule, and the apply's minimum duration through its waves."""

    fleets: tuple[FleetSchedule, ...]
    minimum: float  # seconds: waves one after another, their bakes, regions in flight
    waves: tuple[Mapping[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "fleets": [f.to_dict() for f in self.fleets],
            "minimum": self.minimum,
            "waves": [dict(w) for w in self.waves],
        }


ROLLING_ACTIONS = ("create", "replace")


def plan_schedule(engine: Engine, plan: Plan) -> PlanSchedule:
    """The schedule of each create and replace of ``plan``, and of the whole apply."""
    from ..waves import assign_waves

    out: dict[str, FleetSchedule] = {}
    for item in plan.items:
        if item.action not in ROLLING_ACTIONS:
            continue
        stack = engine.regional.get(item.region or engine.spec.region)
        fleet = stack.spec.fleets.get(item.fleet) if stack is not None else None
        if fleet is None:
            continue
        desired = item.capacity[1] if item.capacity else None  # desired: managed: the live one
        out[item.key] = schedule(
            engine.plugins, fleet, item.key, item.action, item.instances, engine.state, desired
        )
    region = engine.spec.region
    waves = assign_waves(engine.spec, [(i.fleet, i.region or region) for i in plan.items])
    total = 0.0
    summary = []
    for wave in waves:
        by_region: dict[str, float] = {}
        finish: dict[str, float] = {}
        for unit in wave.units:
            end = _finish(unit.key, {u.key: u for u in wave.units}, out, finish)
            by_region[unit.region] = max(by_region.get(unit.region, 0.0), end)
        lanes = wave.max_regions_in_flight or len(by_region) or 1
        spans = list(by_region.values())
        length = sum(max(spans[k : k + lanes]) for k in range(0, len(spans), lanes))
        changed = any(u.key in out for u in wave.units)
        length += wave.bake if changed else 0.0
        summary.append({"name": wave.name, "minimum": length, "bake": wave.bake})
        total += length
    return PlanSchedule(tuple(out.values()), total, tuple(summary))


def _finish(
    key: str, units: Mapping[str, Unit], own: Mapping[str, FleetSchedule], memo: dict[str, float]
) -> float:
    """When unit ``key`` ends at the earliest in its wave: after its dependencies there (the
    spec's validation refuses cycles)."""
    if key not in memo:
        deps = [d for d in units[key].depends_on if d in units]
        after = max((_finish(d, units, own, memo) for d in deps), default=0.0)
        memo[key] = after + (own[key].minimum if key in own else 0.0)
    return memo[key]
