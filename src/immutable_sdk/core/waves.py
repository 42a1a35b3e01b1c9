"""From a spec and a plan to waves of units, and the watch that bakes a wave.

A unit is one fleet in one region (its key: the fleet's name in the spec's region,
``fleet@region`` elsewhere). A unit goes to the first wave of ``spec.waves`` whose ``fleets``
select its fleet and whose ``regions`` select its region; a spec without waves has one wave of
every unit, one region at a time. Within a wave the scheduler keeps at most
``max_regions_in_flight`` regions with units running (see ``orchestrate``). A unit depends on
the units of its fleet's ``depends_on`` in its own region, or in every region of a dependency
that does not deploy to its region.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from ..aws.session import aws_errors
from ..errors import GateFailed
from ..plugin import GateTargets
from ..results import FleetResult
from .orchestrate import (
    DEFAULT_PARALLELISM,
    Bake,
    Orchestrator,
    Unit,
    Wave,
)
from .rollout.gate import GateRunner
from .rollout.holds import quarantine

if TYPE_CHECKING:
    from ..spec.model import Spec
    from .engine import Engine
    from .planner import Plan, PlanItem


def _selects(patterns: Sequence[str], value: str) -> bool:
    return any(fnmatchcase(value, p) for p in patterns)


def assign_waves(spec: Spec, fleets: Sequence[str | tuple[str, str]]) -> list[Wave]:
    """Group units (in plan order) into the spec's waves; one wave when it has none.

    ``fleets``: fleet names (in the spec's region) or (fleet, region) pairs. Fleets the spec
    no longer names (destroy items) go to the last wave.
    """
    pairs = [(f, spec.region) if isinstance(f, str) else f for f in fleets]

    def deps(name: str, region: str) -> tuple[str, ...]:
        fleet = spec.fleets.get(name)
        out: list[str] = []
        for dep in fleet.depends_on if fleet is not None else ():
            other = spec.fleets.get(dep)
            regions = spec.regions_of(other) if other is not None else (region,)
            out += [spec.unit_key(dep, r) for r in regions if r == region or region not in regions]
        return tuple(out)

    def unit(name: str, region: str) -> Unit:
        key = spec.unit_key(name, region)
        return Unit(key=key, fleet=name, region=region, depends_on=deps(name, region))

    if not spec.waves:  # one wave with a wave's defaults: one region at a time
        return [Wave("all", tuple(unit(f, r) for f, r in pairs), max_regions_in_flight=1)]
    groups: list[list[Unit]] = [[] for _ in spec.waves]
    for name, region in pairs:
        index = len(spec.waves) - 1
        if name in spec.fleets:
            for i, w in enumerate(spec.waves):
                if _selects(w.fleets, name) and _selects(w.regions, region):
                    index = i
                    break
        groups[index].append(unit(name, region))
    return [
        Wave(
            name=w.name,
            units=tuple(g),
            bake=w.bake,
            max_regions_in_flight=w.max_regions_in_flight,
            stop_on_failure=w.stop_on_failure,
        )
        for w, g in zip(spec.waves, groups, strict=True)
    ]


def run_plan(
    engine: Engine,
    plan: Plan,
    apply_item: Callable[[PlanItem], FleetResult],
    *,
    parallelism: int = DEFAULT_PARALLELISM,
    fail_fast: bool = False,
) -> list[FleetResult]:
    """Apply ``plan``'s items through ``apply_item``, scheduled; results in plan order."""
    items = {i.key: i for i in plan.items}
    region = engine.spec.region
    waves = assign_waves(engine.spec, [(i.fleet, i.region or region) for i in plan.items])
    skeletons = {
        i.key: FleetResult(i.key, i.action, "blocked", i.current_release, i.release)
        for i in plan.items
    }
    orchestrator = Orchestrator(engine.clock, parallelism=parallelism, fail_fast=fail_fast)
    results = orchestrator.run(
        waves,
        lambda u: apply_item(items[u.key]),
        bake=wave_bake(engine),
        skeletons=skeletons,
    )
    return [results[i.key] for i in plan.items]


def wave_bake(engine: Engine) -> Bake:
    """Watch a changed fleet's health checks for the wave's bake; roll it back if it fails.

    The fleet's lock is held while watching. A failed watch rolls the fleet back to the
    release it came from when its ``rollback.automatic`` allows and there is one.
    """

    def bake(unit: Unit, result: FleetResult, wave: Wave) -> FleetResult:
        stack = engine.regional[unit.region]  # each unit is watched in its own region
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
            runner = GateRunner(fleet.health, engine.plugins.health_checks, ctx, keeper)
            with aws_errors(f"baking wave {wave.name!r}"):
                runner.bake(wave.bake, targets)
            return result

        try:
            return stack.deployer.locked(unit.fleet, watch)
        except GateFailed as exc:
            reason = f"wave {wave.name!r} bake: {exc}"
            ctx.emit("wave.bake_failed", wave=wave.name, error=str(exc))
            failed = replace(result, outcome="failed", error=reason)
            if not (fleet.rollback_automatic and result.from_release):
                return failed
            if release and release != result.from_release and result.rollout:
                checks = ("wave-bake", *exc.checks)
                now = engine.clock.now()
                quarantine(stack.state, unit.fleet, release, result.rollout, checks, reason, now)
            back = engine.rollback(unit.key, to=result.from_release, pin=False)
            if not back.ok:
                return replace(failed, error=f"{reason}; rollback failed too: {back.error}")
            return replace(
                failed,
                outcome="rolled_back",
                rolled_back_to=result.from_release,
                failed_instances=dict(exc.details),
            )

    return bake
