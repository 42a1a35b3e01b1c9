"""Finding drift on AWS and remedying it immutably: ``drift``, ``drift --fix`` and ``recycle``.

Detection reads each fleet (group, instances, launch template versions, the release's image) in
a few batched calls and hands it to the pure ``drift.detect``. A fix takes the fleet's lock, looks
again (the world may have moved since the report), and then, in order: restores the group's
settings to the release's, deletes launch template versions written outside the SDK, and
replaces drifted instances through the fleet's own strategy (a journaled rollout to the current
release, gated and rolled back like any other) or, when only capacity drifted, scales.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ...aws import drift as aws_drift
from ...aws.fleet import FleetApi, GroupState
from ...aws.session import aws_errors
from ...errors import ImmutableSdkError, UsageError
from ...plugin import TAG_SOURCE_AMI, base_image_of
from ...release import release_from_record
from ...results import FleetResult
from ...spec.model import FleetSpec, Spec
from ...state.base import RolloutRecord, StateStore
from ..context import Context
from ..planner import builder_for
from ..rollout.deployer import FleetDeployer
from ..rollout.runner import LockKeeper
from .detect import (
    Drift,
    FixPlan,
    FleetObservation,
    detect,
    health_check_type,
    plan_fix,
)

LIFETIME_KINDS = frozenset({"expired"})


@dataclass
class FleetDrift:
    """One fleet's drift, or why it was not inspected (``skipped``)."""

    fleet: str
    release: str | None
    drifts: list[Drift] = field(default_factory=list)
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "fleet": self.fleet,
            "release": self.release,
            "skipped": self.skipped,
            "drift": [d.to_dict() for d in self.drifts],
        }


@dataclass
class FleetFix:
    """What a fix did (or, in a dry run, would do) for one fleet."""

    plan: FixPlan
    outcome: str  # planned | fixed | failed | nothing
    rollout: FleetResult | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and (self.rollout is None or self.rollout.ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.plan.to_dict(),
            "outcome": self.outcome,
            "error": self.error,
            "rollout": self.rollout.to_dict() if self.rollout else None,
        }


@dataclass
class DriftReport:
    project: str
    fleets: list[FleetDrift]
    checked_at: float
    fixes: list[FleetFix] = field(default_factory=list)
    remaining: list[Drift] | None = None  # drift found again after a fix; None: not fixed
    api_calls: dict[str, int] = field(default_factory=dict)

    @property
    def drifts(self) -> list[Drift]:
        return [d for f in self.fleets for d in f.drifts]

    @property
    def clean(self) -> bool:
        return not self.drifts

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "clean": self.clean,
            "checked_at": self.checked_at,
            "fleets": [f.to_dict() for f in self.fleets],
            "drift": [d.to_dict() for d in self.drifts],
            "fixes": [f.to_dict() for f in self.fixes],
            "remaining": None if self.remaining is None else [d.to_dict() for d in self.remaining],
            "api_calls": dict(self.api_calls),
        }


@dataclass
class Remediator:
    spec: Spec
    ctx: Context
    fleets: FleetApi
    state: StateStore
    deployer: FleetDeployer

    def names(self, fleets: Sequence[str] | None) -> list[str]:
        if not fleets:
            return list(self.spec.fleets)
        unknown = [f for f in fleets if f not in self.spec.fleets]
        if unknown:
            known = ", ".join(sorted(self.spec.fleets)) or "none"
            raise UsageError(f"the spec has no fleet {unknown[0]!r} (fleets: {known})")
        return list(fleets)

    # --- detection --------------------------------------------------------------------------

    def report(self, fleets: Sequence[str] | None = None) -> DriftReport:
        """Every fleet's drift (reads only)."""
        names = self.names(fleets)
        before = self.ctx.session.calls.snapshot()
        now = self.ctx.clock.now()
        observed = self.observe(names, now)
        out = []
        bases: dict[str, str | None] = {}
        for name in names:
            obs = observed[name]
            if isinstance(obs, FleetDrift):
                out.append(obs)
            else:
                found = detect(obs) + self._stale_base(obs, bases)
                out.append(FleetDrift(name, obs.group.release, found))
        calls = self.ctx.session.calls.since(before)
        return DriftReport(self.spec.name, out, now, api_calls=calls)

    def observe(self, names: Sequence[str], now: float) -> dict[str, FleetObservation | FleetDrift]:
        """What detection needs per fleet, or a FleetDrift saying why the fleet is skipped."""
        groups = self.fleets.describe(names)
        found: dict[str, FleetObservation | FleetDrift] = {}
        for name in names:
            group = groups[name]
            if self.spec.fleets[name].traffic:
                found[name] = FleetDrift(
                    name, None, skipped="a traffic fleet: its slot groups are not inspected yet"
                )
                continue
            if group is None:
                found[name] = FleetDrift(
                    name, None, skipped="no Auto Scaling group yet (plan shows it as create)"
                )
                continue
            running = self.state.unfinished_rollout(name)
            if running is not None:
                why = self._unfinished(name, running)
                found[name] = FleetDrift(name, group.release, skipped=why)
                continue
            found[name] = self._observation(self.spec.fleets[name], group, now)
        amis = {
            str(o.release.launch_config.get("image_id"))
            for o in found.values()
            if isinstance(o, FleetObservation) and o.release is not None
        }
        images = aws_drift.describe_images(self.ctx.session, self.spec.region, amis)
        return {
            name: replace(o, images=images) if isinstance(o, FleetObservation) else o
            for name, o in found.items()
        }

    def _stale_base(self, obs: FleetObservation, bases: dict[str, str | None]) -> list[Drift]:
        """``stale-base``: the release's image was built on a base image that is no longer
        the one its builder would start from (a newer AMI matches the template's filter).
        ``bases`` caches each image's current base (one lookup per image)."""
        if obs.release is None:
            return []
        lineage = obs.release.artifact.get("lineage")
        old = lineage.get(TAG_SOURCE_AMI) if isinstance(lineage, Mapping) else None
        if not old:
            return []
        image = self.spec.images[obs.fleet.image]
        if image.name not in bases:
            with aws_errors(f"looking up the base image of image {image.name!r}"):
                builder = builder_for(self.deployer.plugins, image)
                bases[image.name] = base_image_of(builder, image, self.ctx)
        base = bases[image.name]
        if not base or base == old:
            return []
        ami = str(obs.release.launch_config.get("image_id", "?"))
        return [Drift("stale-base", obs.fleet.name, ami, base, str(old), "rebuild")]

    def _unfinished(self, fleet: str, record: RolloutRecord) -> str:
        """Why a fleet with an unfinished rollout is not judged: running, or left for apply."""
        lock = self.state.get_lock(fleet)
        if lock is not None and lock.lease_until >= self.ctx.clock.now():
            return f"rollout {record.id} is in progress"
        what = "its rollback" if record.phase == "rolling_back" else "it"
        return f"rollout {record.id} is unfinished ({record.phase}): apply finishes {what}"

    def _observation(self, fleet: FleetSpec, group: GroupState, now: float) -> FleetObservation:
        records = self.state.releases(fleet.name)
        current = next((r for r in records if r.release == group.release), None)
        return FleetObservation(
            fleet=fleet,
            group=group,
            template=self.fleets.name(fleet.name),
            now=now,
            release=current,
            known_releases=frozenset(r.release for r in records),
            versions=tuple(aws_drift.template_versions(self.fleets, fleet.name)),
            images={},
        )

    # --- remedies ---------------------------------------------------------------------------

    def fix(
        self,
        report: DriftReport,
        *,
        dry_run: bool = False,
        kinds: frozenset[str] | None = None,
        action: str = "drift-fix",
    ) -> list[FleetFix]:
        """Remedy the report's drift (of ``kinds`` only, when given), fleet by fleet."""
        fixes: list[FleetFix] = []
        for entry in report.fleets:
            plan = plan_fix(entry.fleet, entry.drifts, kinds=kinds)
            if not entry.drifts or (plan.empty and not plan.left):
                continue
            if dry_run or plan.empty:
                fixes.append(FleetFix(plan, "planned" if dry_run else "nothing"))
                continue
            fixes.append(self._fix_fleet(entry.fleet, kinds, action))
        report.fixes = fixes
        return fixes

    def _fix_fleet(self, name: str, kinds: frozenset[str] | None, action: str) -> FleetFix:
        """Under the fleet's lock, look again and remedy what is still there."""
        fleet = self.spec.fleets[name]
        keeper = LockKeeper(self.state, name, self.deployer.owner, self.deployer.lease, self.ctx)
        keeper.acquire()
        try:
            obs = self.observe([name], self.ctx.clock.now())[name]
            if isinstance(obs, FleetDrift):
                return FleetFix(FixPlan(name), "nothing", error=obs.skipped)
            plan = plan_fix(name, detect(obs), kinds=kinds)
            try:
                return self._apply_plan(fleet, obs, plan, keeper, action)
            except ImmutableSdkError as exc:
                return FleetFix(plan, "failed", error=str(exc))
        finally:
            keeper.release()

    def _apply_plan(
        self,
        fleet: FleetSpec,
        obs: FleetObservation,
        plan: FixPlan,
        keeper: LockKeeper,
        action: str,
    ) -> FleetFix:
        if plan.empty:
            return FleetFix(plan, "nothing")
        assert obs.release is not None  # a plan with remedies has a known release
        release = release_from_record(fleet, obs.release)
        config = obs.release.launch_config
        ctx = self.ctx.scoped(fleet=fleet.name)
        ctx.emit("drift.fixing", actions=plan.actions())
        for d in plan.restore:
            if d.kind == "launch-template":  # a replacement would set it too; do it first
                version = self.fleets.ensure_version(fleet, release, None)
                self.fleets.update_group(fleet.name, version=version)
            elif d.kind == "target-groups":
                aws_drift.set_target_groups(
                    self.fleets,
                    fleet.name,
                    list(config.get("target_groups") or ()),
                    obs.group.target_groups,
                )
            elif d.kind == "subnets":
                aws_drift.set_group_settings(
                    self.fleets, fleet.name, subnets=list(config.get("subnets") or ())
                )
            elif d.kind == "health-check-type":
                aws_drift.set_group_settings(
                    self.fleets, fleet.name, health_check_type=health_check_type(config)
                )
            elif d.kind == "suspended-processes":
                self.fleets.resume(fleet.name, sorted(obs.group.suspended))
        if plan.delete_versions:
            self.fleets.delete_versions(fleet.name, plan.delete_versions)
        rollout = None
        if plan.replace:
            rollout = self.deployer.roll(
                fleet, release, action, keeper, replace=frozenset(plan.replace)
            )
        elif plan.scale:
            cap = fleet.capacity
            desired = cap.wanted(obs.group.desired)  # desired: managed keeps the live value
            ctx.emit("fleet.scaling", min=cap.min, desired=desired, max=cap.max)
            self.fleets.update_group(
                fleet.name, min_size=cap.min, desired=desired, max_size=cap.max
            )
        ok = rollout is None or rollout.ok
        return FleetFix(
            plan,
            "fixed" if ok else "failed",
            rollout=rollout,
            error=None if ok else (rollout.error if rollout else None),
        )


def fix_results(fixes: Sequence[FleetFix]) -> list[FleetResult]:
    """The fixes as apply results: their rollouts, and a failed result for a failed fix."""
    out: list[FleetResult] = []
    for f in fixes:
        if f.rollout is not None:
            out.append(f.rollout)
        elif f.error is not None:
            out.append(FleetResult(f.plan.fleet, "recycle", "failed", error=f.error))
    return out
