"""Planning: desired (spec + image artifacts) against actual (AWS tags + state) -> Plan.

Per fleet: ``noop``, ``create``, ``replace`` (a new release), ``scale`` (capacity only) or
``destroy`` (a group of the project that the spec no longer names), each with its reasons.
Planning only reads: it never changes AWS or the state store.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..aws import scaling
from ..aws.fleet import SUSPENDED_DURING_ROLLOUT, FleetApi, GroupState
from ..aws.network import (
    NetworkIds,
    resolve_security_groups,
    resolve_subnets,
    resolve_target_groups,
)
from ..aws.session import aws_errors
from ..errors import AwsError
from ..lifecycle import Phase
from ..plugin import TAG_SOURCE_AMI, Artifact, Builder, base_image_of
from ..plugins import Plugins
from ..release import (
    Release,
    changed_fields,
    launch_config,
    make_release,
)
from ..results import Plan, PlanItem
from ..spec.model import FleetSpec, ImageSpec, Spec
from ..state.base import StateStore
from .context import Context
from .rollout.holds import held_item
from .waves import assign_waves


def waved_plan(
    spec: Spec, items: Sequence[PlanItem], builds: Sequence[str], artifacts: Mapping[str, Artifact]
) -> Plan:
    """The plan of ``items``, each with the wave its unit rolls out in (specs with waves)."""
    if not spec.waves:
        return Plan(spec.name, tuple(items), tuple(builds), artifacts)
    waves = assign_waves(spec, [(i.fleet, i.region or spec.region) for i in items])
    wave_of = {u.key: w.name for w in waves for u in w.units}
    waved = tuple(replace(i, wave=wave_of.get(i.key)) for i in items)
    return Plan(spec.name, waved, tuple(builds), artifacts, tuple(w.to_dict() for w in waves))


def builder_for(plugins: Plugins, image: ImageSpec) -> Builder:
    return plugins.builders.get(image.builder).create(image.config)


@dataclass
class Planner:
    spec: Spec
    plugins: Plugins
    ctx: Context
    fleets: FleetApi
    state: StateStore
    # Every fleet's network references, resolved by the last plan(): apply computes the same
    # releases the plan showed, with a few calls for all fleets instead of a few per fleet.
    network: NetworkIds | None = field(default=None, repr=False)
    # image -> the base AMI its next build starts from (builders that name one), for images
    # that need a build: the plan says ``base ami-old -> ami-new: rebuild``.
    bases: dict[str, str] = field(default_factory=dict, repr=False)

    def find_artifacts(
        self, images: Collection[str] | None = None
    ) -> tuple[dict[str, Artifact], list[str]]:
        """Existing artifacts for the images fleets use (``images``: only these), and the
        images needing a build."""
        found: dict[str, Artifact] = {}
        builds: list[str] = []
        wanted = {f.image for f in self.spec.fleets.values()}
        for name in sorted(wanted if images is None else wanted & set(images)):
            image = self.spec.images[name]
            with aws_errors(f"looking up image {name!r}"):
                builder = builder_for(self.plugins, image)
                artifact = builder.find(image, self.ctx)
                base = None if artifact else base_image_of(builder, image, self.ctx)
            if base:
                self.bases[name] = base
            if artifact is None:
                builds.append(name)
            else:
                found[name] = artifact
        return found, builds

    def resolve_network(self, fleets: Iterable[FleetSpec] | None = None) -> NetworkIds | None:
        """Resolve the references of every fleet (of ``fleets``) at once; None when one of
        them is missing (each fleet then resolves its own, so that the error names it)."""
        fleets = list(self.spec.fleets.values() if fleets is None else fleets)
        try:
            return NetworkIds.resolve(
                self.ctx.client("ec2"),
                self.ctx.client("elbv2"),
                subnets=[r for f in fleets for r in f.subnets],
                security_groups=[r for f in fleets for r in f.security_groups],
                target_groups=[r for f in fleets for r in f.target_groups],
            )
        except AwsError as exc:
            if exc.code != "NotFound":
                raise
            return None

    def desired_release(self, fleet: FleetSpec, artifact: Artifact) -> Release:
        ec2, elbv2 = self.ctx.client("ec2"), self.ctx.client("elbv2")
        known = self.network or NetworkIds({}, {}, {})
        sgs = known.lookup(known.security_groups, fleet.security_groups)
        subnets = known.lookup(known.subnets, fleet.subnets)
        tgs = known.lookup(known.target_groups, fleet.target_groups)
        config = launch_config(
            fleet,
            artifact,
            self.spec.region,
            security_group_ids=sgs or resolve_security_groups(ec2, fleet.security_groups),
            subnet_ids=subnets or resolve_subnets(ec2, fleet.subnets),
            target_group_arns=tgs or resolve_target_groups(elbv2, fleet.target_groups),
        )
        return make_release(fleet, artifact, config)

    def live_slot_groups(
        self, among: Iterable[FleetSpec] | None = None
    ) -> dict[str, GroupState | None]:
        """For fleets with traffic slots (of ``among``), the group of the slot that serves
        (see aws.slots)."""
        fleets = [f for f in (self.spec.fleets.values() if among is None else among) if f.traffic]
        if not fleets:
            return {}
        from ..aws.slots import SlotGroups, live_groups
        from ..aws.traffic import TrafficApi

        routes = TrafficApi(self.ctx.session, self.ctx.clock)
        return live_groups(SlotGroups(self.fleets), routes, fleets)

    def plan(
        self,
        found: tuple[dict[str, Artifact], list[str]] | None = None,
        only: Collection[str] | None = None,
    ) -> Plan:
        """``found``: what ``find_artifacts`` returned, when already asked (other regions).

        ``only``: the fleets to plan (names in this region), None for all. Only their images,
        network references, groups and live slots are read; a name the spec does not have is a
        dropped fleet, a ``destroy`` item when AWS still has its group. Each item is the one
        the whole plan has for that fleet (tests/engine/test_unit_plan.py)."""
        fleets = dict(self.spec.fleets)
        if only is not None:
            fleets = {name: f for name, f in fleets.items() if name in only}
        if found is None:
            found = self.find_artifacts(
                None if only is None else {f.image for f in fleets.values()}
            )
        artifacts, builds = found
        self.network = self.resolve_network(fleets.values())
        groups = self.fleets.describe(list(fleets))
        groups.update(self.live_slot_groups(fleets.values()))  # a slot fleet: its live slot
        items = [
            self._item(
                fleet,
                groups[name],
                artifacts.get(fleet.image),
                fleet.image in builds,
                self._policy_changes(fleet, groups[name]),
            )
            for name, fleet in fleets.items()
        ]
        items += self._dropped(only)
        return waved_plan(self.spec, items, builds, artifacts)

    def _dropped(self, only: Collection[str] | None) -> list[PlanItem]:
        """``destroy`` items: groups of the project that the spec no longer names (of
        ``only``: AWS is asked only when one of them is not a fleet of the spec)."""
        names = set(self.spec.fleets)
        if only is not None and set(only) <= names:
            return []
        dropped = sorted(set(self.fleets.project_fleets()) - names)
        if only is not None:
            dropped = [name for name in dropped if name in only]
        where = f" in {self.ctx.region}" if self.ctx.unit_suffix else ""
        return [
            PlanItem(
                fleet=gone,
                action="destroy",
                reasons=(f"the spec no longer names this fleet{where}",),
                current_release=g.release if g else None,
                current_capacity=(g.min, g.desired, g.max) if g else None,
                instances=len(g.live()) if g else 0,
            )
            for gone, g in self.fleets.describe(dropped).items()
        ]

    def _policy_changes(self, fleet: FleetSpec, group: GroupState | None) -> list[str]:
        """How the group's scaling policies differ from the spec's (``desired: managed``
        fleets only: their policies are read, one call per fleet)."""
        if group is None or not fleet.capacity.managed:
            return []
        return scaling.differences(fleet, scaling.owned(self.fleets, fleet.name))

    def _item(
        self,
        fleet: FleetSpec,
        group: GroupState | None,
        artifact: Artifact | None,
        build: bool,
        policy_changes: Sequence[str] = (),
    ) -> PlanItem:
        cap = fleet.capacity
        # ``desired: managed``: scaling policies own desired; the SDK keeps it within bounds.
        want = (cap.min, cap.wanted(group.desired if group else None), cap.max)
        release = self.desired_release(fleet, artifact) if artifact else None
        common: dict[str, Any] = {
            "fleet": fleet.name,
            "image": fleet.image,
            "build": build,
            "capacity": want,
            "release": release.id if release else None,
        }
        unfinished = self._unfinished(fleet.name)
        if group is None:
            created = ("no Auto Scaling group yet", *unfinished)
            return self._held(PlanItem(action="create", reasons=created, **common), unfinished)
        have = (group.min, group.desired, group.max)
        common.update(
            current_release=group.release, current_capacity=have, instances=len(group.live())
        )
        reasons = unfinished + self._release_reasons(fleet, group, release, build)
        if reasons:
            item = PlanItem(action="replace", reasons=tuple(reasons), **common)
            return self._held(item, unfinished)
        stray = [m.instance_id for m in group.not_of_release(group.release)]
        if stray:
            return PlanItem(
                action="replace",
                reasons=(f"{len(stray)} instance(s) not on release {group.release}",),
                **common,
            )
        # Processes a rollout suspends and a stopped one left suspended: a scale resumes them.
        held = [] if fleet.traffic else sorted(group.suspended & set(SUSPENDED_DURING_ROLLOUT))
        if have != want or held or policy_changes:
            what = [
                f"{k} {a} -> {b}"
                for k, a, b in zip(("min", "desired", "max"), have, want, strict=True)
                if a != b
            ]
            if held:
                what.append(f"processes left suspended: {', '.join(held)}")
            what += policy_changes
            return PlanItem(action="scale", reasons=tuple(what), **common)
        return PlanItem(action="noop", **common)

    def _held(self, item: PlanItem, unfinished: list[str]) -> PlanItem:
        """The item as the fleet's quarantines and pin leave it (holds.py). An unfinished
        rollout is finished whatever the holds say: apply never leaves one half done."""
        if unfinished:
            return item
        return held_item(item, self.state.holds(item.fleet), self.ctx.unit(item.fleet))

    def _unfinished(self, fleet: str) -> list[str]:
        """A rollout of the fleet that did not finish: apply resumes it (see ``rollout.resume``)."""
        record = self.state.unfinished_rollout(fleet)
        if record is None:
            return []
        lock = self.state.get_lock(fleet)
        if lock is not None and lock.lease_until >= self.ctx.clock.now():
            return [f"rollout {record.id} in progress (locked by {lock.owner})"]
        if record.phase == Phase.ROLLING_BACK.value:
            back = record.from_release or "nothing (undo the fleet's creation)"
            why = f" after: {record.error}" if record.error else ""
            return [f"finish rolling back unfinished rollout {record.id} to {back}{why}"]
        return [f"resume unfinished rollout {record.id}"]

    def _rebuild_reason(self, fleet: FleetSpec, group: GroupState) -> str:
        """Why the fleet's image is built again: a newer base image, when the builder names
        the base and the running release's artifact records the one it was built on."""
        base = self.bases.get(fleet.image)
        record = self.state.get_release(fleet.name, group.release) if group.release else None
        lineage = record.artifact.get("lineage") if record else None
        old = lineage.get(TAG_SOURCE_AMI) if isinstance(lineage, Mapping) else None
        if base and old and base != old:
            return f"image {fleet.image!r}: base {old} -> {base}: rebuild"
        return f"image {fleet.image!r} changed: a new artifact will be built"

    def _release_reasons(
        self, fleet: FleetSpec, group: GroupState, release: Release | None, build: bool
    ) -> list[str]:
        if build:
            return [self._rebuild_reason(fleet, group)]
        assert release is not None
        if group.release == release.id:
            return []
        if group.release is None:
            return ["the group carries no release tag (adopted or interrupted)"]
        previous = self.state.get_release(fleet.name, group.release)
        if previous is None:
            return [f"release {group.release} -> {release.id}"]
        fields = changed_fields(previous.launch_config, release.launch_config)
        return [f"{k} changed" for k in fields] or [f"release {group.release} -> {release.id}"]
