"""Carrying out a plan: its units scheduled wave by wave, and the watch that bakes a wave.

``run_plan`` hands each plan item to ``apply_item`` through the ``Orchestrator`` (parallel,
in dependency order, wave after wave); ``wave_bake`` is the bake that watches a changed fleet
after its wave and rolls it back when the watch fails.

A wave's bake is a durable fact: when a unit's rollout ends (promoted or created) in a wave
that bakes, its rollout record owes the bake (``wave_ledger``), with the bake's start and
deadline once it began, until the bake is done. A later apply or reconcile tick that finds
the unit up to date but its bake owed bakes it (outcome ``baking``) for what is left, and
later waves wait for it; a reconcile tick looks once and journals the deadline. Both take
their collaborators (the clock, the regional stacks, the health checks, a rollback) rather
than the whole engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ..aws.session import aws_errors
from ..clock import Clock, Reservation
from ..errors import GateFailed
from ..plugin import GateTargets, HealthCheckFactory, Registry
from ..results import FleetResult, Plan, PlanItem
from ..spec.model import Spec
from ..state.base import RolloutRecord
from .orchestrate import DEFAULT_PARALLELISM, Bake, Orchestrator
from .regions import Regional
from .rollout.gate import GateRunner
from .rollout.gate_progress import GateProgress
from .rollout.holds import quarantine
from .tick.due import WAVE_BAKE
from .tick.due import wave_bake as owed_bake
from .waves import Unit, Wave, assign_waves

# (unit key, release) -> the rollback's result; it does not pin the fleet (the failed
# release is quarantined instead, so a new desired release is not held back)
Rollback = Callable[[str, str], FleetResult]


def run_plan(
    spec: Spec,
    clock: Clock,
    plan: Plan,
    apply_item: Callable[[PlanItem], FleetResult],
    *,
    bake: Bake,
    ledger: Bake | None = None,
    parallelism: int = DEFAULT_PARALLELISM,
    fail_fast: bool = False,
    held: Reservation | None = None,
) -> list[FleetResult]:
    """Apply ``plan``'s items through ``apply_item``, scheduled; results in plan order.
    ``ledger`` (``wave_ledger``) sees each result of a unit whose wave bakes; ``held``: see
    ``Orchestrator.run``."""
    items = {i.key: i for i in plan.items}
    waves = assign_waves(spec, [(i.fleet, i.region or spec.region) for i in plan.items])
    wave_of = {u.key: w for w in waves for u in w.units}

    def work(unit: Unit) -> FleetResult:
        result = apply_item(items[unit.key])
        wave = wave_of[unit.key]
        return ledger(unit, result, wave) if ledger and wave.bake > 0 else result

    skeletons = {
        i.key: FleetResult(i.key, i.action, "blocked", i.current_release, i.release)
        for i in plan.items
    }
    orchestrator = Orchestrator(clock, parallelism=parallelism, fail_fast=fail_fast)
    results = orchestrator.run(waves, work, bake=bake, skeletons=skeletons, held=held)
    return [results[i.key] for i in plan.items]


def owed(stack: Regional, fleet: str, rollout: str | None) -> RolloutRecord | None:
    """The rollout record of ``fleet`` that owes its wave a bake (``rollout``, else the
    fleet's newest), or None."""
    record = stack.state.get_rollout(rollout) if rollout else None
    if record is None:
        newest = stack.state.rollouts(fleet, limit=1)
        record = newest[0] if newest else None
    return record if record is not None and owed_bake(record) is not None else None


def wave_ledger(stacks: Mapping[str, Regional]) -> Bake:
    """Record that a unit's finished rollout owes its wave a bake; turn an up-to-date unit
    whose rollout still owes one into ``baking`` (a bake an earlier run did not finish)."""

    def ledger(unit: Unit, result: FleetResult, wave: Wave) -> FleetResult:
        stack = stacks[unit.region]
        if result.outcome in ("promoted", "created") and result.rollout:
            record = stack.state.get_rollout(result.rollout)
            if record is not None and WAVE_BAKE not in record.data:
                owes = {"wave": wave.name, "seconds": wave.bake}
                stack.state.update_rollout(record.id, data={**record.data, WAVE_BAKE: owes})
            return result
        if result.outcome == "noop":
            record = owed(stack, unit.fleet, None)
            if record is not None:
                return replace(
                    result,
                    outcome="baking",
                    rollout=record.id,
                    from_release=record.from_release,
                    to_release=record.to_release,
                )
        return result

    return ledger


def settle_bake(stack: Regional, record: RolloutRecord | None, **facts: Any) -> None:
    """Journal the owed bake's facts (its start, deadline, next poll, or that it is done)."""
    if record is None:
        return
    fresh = stack.state.get_rollout(record.id) or record
    bake = dict(fresh.data.get(WAVE_BAKE) or {})
    bake.update(facts)
    stack.state.update_rollout(record.id, data={**fresh.data, WAVE_BAKE: bake})


WAVE_BAKE_STEP = -2  # the step index a wave bake's check progress is saved under


def wave_bake(
    stacks: Mapping[str, Regional],
    health_checks: Registry[HealthCheckFactory],
    rollback: Rollback,
) -> Bake:
    """Watch a changed fleet's health checks for the wave's bake; roll it back if it fails.

    The fleet's lock is held while watching. A failed watch quarantines the release (the
    next apply leaves it out until ``apply --retry-failed``) and rolls the fleet back to the
    release it came from when its ``rollback.automatic`` allows and there is one.
    """

    def bake(unit: Unit, result: FleetResult, wave: Wave) -> FleetResult:
        stack = stacks[unit.region]  # each unit is watched in its own region
        fleet = stack.spec.fleets[unit.fleet]
        ctx = stack.ctx.scoped(fleet=unit.fleet)
        release = result.to_release
        ctx.emit("wave.bake", wave=wave.name, seconds=wave.bake, release=release)

        def targets() -> GateTargets:
            group = stack.fleets.describe_one(unit.fleet)
            members = group.of_release(release) if group else []
            return GateTargets(
                fleet=unit.fleet,
                release=release or "",
                instances=[m.target() for m in members if m.lifecycle_state == "InService"],
                target_groups=group.target_groups if group else (),
            )

        record = owed(stack, unit.fleet, result.rollout)
        owes = owed_bake(record) if record else None
        began = owes.get("since") if owes else None
        clock = ctx.clock
        since = float(began) if isinstance(began, (int, float)) else clock.now()
        until = since + wave.bake
        if began is None:
            settle_bake(stack, record, since=since, until=until)
        done = replace(result, outcome="noop") if result.outcome == "baking" else result

        def watch(keeper: Callable[[], None]) -> FleetResult:
            runner = GateRunner(fleet.health, health_checks, ctx, keeper)
            tick = not ctx.horizon.unlimited
            checks = runner.checks()
            if tick and record is not None and began is not None:  # an earlier tick looked
                GateProgress.restore(stack.state, record.id, WAVE_BAKE_STEP, checks)
            with aws_errors(f"baking wave {wave.name!r}"):
                runner.bake(0.0 if tick else max(0.0, until - clock.now()), targets, checks)
            now = clock.now()
            if tick and now < until:  # a later tick looks again: the deadline is journaled
                if record is not None:  # the checks' streaks go on in the next tick's look
                    GateProgress.save(stack.state, record.id, WAVE_BAKE_STEP, checks, at=now)
                next_at = min(until, now + fleet.health.interval)
                settle_bake(stack, record, next_at=next_at)
                return replace(
                    result,
                    outcome="waiting",
                    waiting_for=WAVE_BAKE,
                    next_at=next_at,
                    step=f"wave {wave.name} bake",
                )
            settle_bake(stack, record, done=True)
            return done

        try:
            return stack.deployer_for(fleet).locked(unit.fleet, watch)
        except GateFailed as exc:
            settle_bake(stack, record, done=True, failed=str(exc))
            reason = f"wave {wave.name!r} bake: {exc}"
            ctx.emit("wave.bake_failed", wave=wave.name, error=str(exc))
            failed = replace(result, outcome="failed", error=reason)
            if release and release != result.from_release and result.rollout:
                # the watch judged the release: the next apply leaves it out (holds.py)
                checks = ("wave-bake", *exc.checks)
                now = stack.ctx.clock.now()
                quarantine(stack.state, unit.fleet, release, result.rollout, checks, reason, now)
            if not (fleet.rollback_automatic and result.from_release):
                return failed
            back = rollback(unit.key, result.from_release)
            if not back.ok:
                return replace(failed, error=f"{reason}; rollback failed too: {back.error}")
            return replace(
                failed,
                outcome="rolled_back",
                rolled_back_to=result.from_release,
                failed_instances=dict(exc.details),
            )

    return bake
