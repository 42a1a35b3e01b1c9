"""Carrying out a plan: its units scheduled wave by wave, and the watch that bakes a wave.

``run_plan`` hands each plan item to ``apply_item`` through the ``Orchestrator`` (parallel,
in dependency order, wave after wave); ``wave_bake`` is the bake that watches a changed fleet
after its wave and rolls it back when the watch fails. Both take their collaborators (the
clock, the regional stacks, the health checks, a rollback) rather than the whole engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from ..aws.session import aws_errors
from ..clock import Clock
from ..errors import GateFailed
from ..plugin import GateTargets, HealthCheckFactory, Registry
from ..results import FleetResult, Plan, PlanItem
from ..spec.model import Spec
from .orchestrate import DEFAULT_PARALLELISM, Bake, Orchestrator
from .regions import Regional
from .rollout.gate import GateRunner
from .rollout.holds import quarantine
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
    parallelism: int = DEFAULT_PARALLELISM,
    fail_fast: bool = False,
) -> list[FleetResult]:
    """Apply ``plan``'s items through ``apply_item``, scheduled; results in plan order."""
    items = {i.key: i for i in plan.items}
    waves = assign_waves(spec, [(i.fleet, i.region or spec.region) for i in plan.items])
    skeletons = {
        i.key: FleetResult(i.key, i.action, "blocked", i.current_release, i.release)
        for i in plan.items
    }
    orchestrator = Orchestrator(clock, parallelism=parallelism, fail_fast=fail_fast)
    results = orchestrator.run(
        waves, lambda u: apply_item(items[u.key]), bake=bake, skeletons=skeletons
    )
    return [results[i.key] for i in plan.items]


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

        def watch(keeper: Callable[[], None]) -> FleetResult:
            runner = GateRunner(fleet.health, health_checks, ctx, keeper)
            with aws_errors(f"baking wave {wave.name!r}"):
                runner.bake(wave.bake, targets)
            return result

        try:
            return stack.deployer_for(fleet).locked(unit.fleet, watch)
        except GateFailed as exc:
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
