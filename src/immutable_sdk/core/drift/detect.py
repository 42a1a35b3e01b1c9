"""Drift: every difference between what runs and a fleet's current release, found by reading.

``detect(observation)`` is a pure function over what was observed of one fleet (its Auto
Scaling group, the launch template's versions, the release records in state, the release's
image) and the time: it returns one ``Drift`` per (subject, kind), each with the remedy that
``drift --fix`` applies. Remedies are immutable: an instance is replaced through the fleet's
strategy, never patched; a group setting is restored; capacity alone is a scale.

The current release is the one the group was last promoted to (its release tag). Drift is
measured against it, and against the spec for capacity; a spec that asks for a new release is
``plan``'s business, not drift.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ...aws.drift import TemplateVersion
from ...aws.fleet import GroupState, Member
from ...clock import parse_time
from ...spec.model import FleetSpec
from ...state.base import ReleaseRecord
from ...units import format_duration

# kind -> what it means (docs/drift.md lists the same words)
KINDS: dict[str, str] = {
    "wrong-release": "an instance of another release than the group's current one",
    "wrong-ami": "an instance on another AMI than its release's",
    "unmanaged": "an instance without the release tag (attached by hand)",
    "expired": "an instance older than the fleet's max_lifetime",
    "capacity": "min, desired or max differs from the spec",
    "launch-template": "the group uses another launch template or version",
    "target-groups": "the group's target groups differ from the release's",
    "subnets": "the group's subnets differ from the release's",
    "health-check-type": "the group's health check type was changed",
    "suspended-processes": "Auto Scaling processes of the group are suspended",
    "foreign-version": "a launch template version the SDK did not write",
    "ami-deregistered": "the current release's AMI is deregistered",
    "ami-deprecated": "the current release's AMI is deprecated",
    "no-release": "the group carries no release the state knows",
    "stale-base": "the release's image was built on a base AMI that a newer one replaced",
}
# remedy -> what ``drift --fix`` does about it
REMEDIES: dict[str, str] = {
    "replace": "replace the instance through the fleet's strategy",
    "restore": "set the group's setting back to the release's",
    "scale": "set min/desired/max back to the spec",
    "delete": "delete the launch template version",
    "rebuild": "not fixed by drift --fix: build a new image and apply",
    "apply": "not fixed by drift --fix: run apply to roll out a release",
    "manual": "not fixed by drift --fix: needs a person (see the message)",
}
FIXABLE = frozenset({"replace", "restore", "scale", "delete"})
GONE_IMAGE_STATES = frozenset({"deregistered", "failed", "invalid", "error", "disabled"})


@dataclass(frozen=True)
class Drift:
    """One difference: ``subject`` is an instance id, ``group``, ``version N`` or an AMI id."""

    kind: str
    fleet: str
    subject: str
    expected: str
    found: str
    remedy: str

    @property
    def fixable(self) -> bool:
        return self.remedy in FIXABLE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FleetObservation:
    """What was read about one fleet, and when (the clock's epoch seconds)."""

    fleet: FleetSpec
    group: GroupState
    template: str  # the SDK's launch template name for the fleet
    now: float
    release: ReleaseRecord | None = None  # the record of the group's release tag
    known_releases: frozenset[str] = frozenset()
    versions: tuple[TemplateVersion, ...] = ()
    images: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)  # None: gone


def detect(obs: FleetObservation) -> list[Drift]:
    """Every drift of one fleet, instances first (oldest first), then group, template, image."""
    fleet, group = obs.fleet.name, obs.group
    if group.release is None or obs.release is None:
        what = "no release tag" if group.release is None else f"unknown release {group.release}"
        return [
            Drift("no-release", fleet, "group", "a release the state knows", what, "apply"),
            *_capacity(obs),
            *_suspended(obs),
        ]
    return [
        *_instances(obs),
        *_capacity(obs),
        *_group_settings(obs),
        *_suspended(obs),
        *_foreign_versions(obs),
        *_image(obs),
    ]


def expected_version(obs: FleetObservation) -> int | None:
    """The launch template version the SDK wrote for the current release (the lowest)."""
    numbers = [v.number for v in obs.versions if v.release == obs.group.release]
    return min(numbers) if numbers else None


def expired(member: Member, max_lifetime: float | None, now: float) -> bool:
    """Whether ``member`` outlived ``max_lifetime`` (unknown launch times never do)."""
    return bool(max_lifetime and member.launched_at and now - member.launched_at > max_lifetime)


def _instances(obs: FleetObservation) -> list[Drift]:
    assert obs.release is not None
    fleet, release = obs.fleet.name, obs.group.release
    ami = str(obs.release.launch_config.get("image_id"))
    lifetime = obs.fleet.max_lifetime
    out: list[Drift] = []
    for m in sorted(obs.group.live(), key=lambda m: (m.launched_at, m.instance_id)):
        i = m.instance_id
        if m.release is None:
            out.append(
                Drift("unmanaged", fleet, i, f"release {release}", "no release tag", "replace")
            )
        elif m.release != release:
            out.append(
                Drift(
                    "wrong-release",
                    fleet,
                    i,
                    f"release {release}",
                    f"release {m.release}",
                    "replace",
                )
            )
        if m.ami and m.ami != ami:
            out.append(Drift("wrong-ami", fleet, i, ami, m.ami, "replace"))
        if lifetime and expired(m, lifetime, obs.now):
            age = rough_age(obs.now - m.launched_at)
            out.append(
                Drift(
                    "expired",
                    fleet,
                    i,
                    f"younger than {format_duration(lifetime)}",
                    f"{age} old",
                    "replace",
                )
            )
    return out


def rough_age(seconds: float) -> str:
    """An age to read, to two units: ``7d 2h``, ``5h 12m``, ``3m 20s``, ``42s``."""
    s = max(0, int(seconds))
    for big, big_unit, small, small_unit in (
        (86_400, "d", 3_600, "h"),
        (3_600, "h", 60, "m"),
        (60, "m", 1, "s"),
    ):
        if s >= big:
            return f"{s // big}{big_unit} {s % big // small}{small_unit}"
    return f"{s}s"


def _capacity(obs: FleetObservation) -> list[Drift]:
    cap, g = obs.fleet.capacity, obs.group
    want, have = (cap.min, cap.wanted(g.desired), cap.max), (g.min, g.desired, g.max)
    if want == have:
        return []
    return [Drift("capacity", obs.fleet.name, "group", _sizes(want), _sizes(have), "scale")]


def _suspended(obs: FleetObservation) -> list[Drift]:
    """Suspended processes: a rollout suspends some while it runs and resumes them at its end;
    left suspended (a rollout that stopped, a person), the group no longer rebalances across
    zones or runs its scheduled actions (or whatever else is suspended)."""
    if not obs.group.suspended:
        return []
    found = ", ".join(sorted(obs.group.suspended))
    return [Drift("suspended-processes", obs.fleet.name, "group", "none", found, "restore")]


def _sizes(sizes: Sequence[int]) -> str:
    return "min={} desired={} max={}".format(*sizes)


def _group_settings(obs: FleetObservation) -> list[Drift]:
    assert obs.release is not None
    fleet, g, config = obs.fleet.name, obs.group, obs.release.launch_config
    out: list[Drift] = []
    version = expected_version(obs)
    want_lt = f"{obs.template} version {version if version is not None else '(missing)'}"
    have_lt = f"{g.launch_template or '(none)'} version {g.version or '(none)'}"
    if g.launch_template != obs.template or version is None or g.version != str(version):
        out.append(Drift("launch-template", fleet, "group", want_lt, have_lt, "restore"))
    want_tgs = sorted(config.get("target_groups") or ())
    if sorted(g.target_groups) != want_tgs:
        out.append(
            Drift(
                "target-groups",
                fleet,
                "group",
                _list(want_tgs),
                _list(sorted(g.target_groups)),
                "restore",
            )
        )
    want_subnets = sorted(config.get("subnets") or ())
    if want_subnets and sorted(g.subnets) != want_subnets:
        out.append(
            Drift(
                "subnets", fleet, "group", _list(want_subnets), _list(sorted(g.subnets)), "restore"
            )
        )
    want_hc = health_check_type(config)
    if g.health_check_type != want_hc:
        out.append(
            Drift("health-check-type", fleet, "group", want_hc, g.health_check_type, "restore")
        )
    return out


def health_check_type(launch_config: Mapping[str, Any]) -> str:
    """The group's health check type the SDK sets: ELB behind target groups, else EC2."""
    return "ELB" if launch_config.get("target_groups") else "EC2"


def _list(items: Sequence[str]) -> str:
    return ", ".join(items) or "(none)"


def _foreign_versions(obs: FleetObservation) -> list[Drift]:
    fleet, out = obs.fleet.name, []
    claimed: set[str] = set()
    for v in sorted(obs.versions, key=lambda v: v.number):
        if v.release is None:
            why = "no release tag"
        elif v.release not in obs.known_releases:
            why = f"release {v.release}, unknown to the state"
        elif v.release in claimed:
            why = f"a second version of release {v.release}"
        else:
            claimed.add(v.release)
            continue
        # The default version cannot be deleted; someone must choose another default first.
        remedy = "manual" if v.default else "delete"
        expected = "only versions the SDK wrote"
        if v.default:
            expected += " (this one is the default version: make an SDK version the default)"
        out.append(Drift("foreign-version", fleet, f"version {v.number}", expected, why, remedy))
    return out


def _image(obs: FleetObservation) -> list[Drift]:
    assert obs.release is not None
    ami = str(obs.release.launch_config.get("image_id"))
    if ami not in obs.images:
        return []  # not looked up
    image = obs.images[ami]
    fleet = obs.fleet.name
    if image is None or str(image.get("State", "available")) in GONE_IMAGE_STATES:
        found = "not found" if image is None else str(image.get("State"))
        return [Drift("ami-deregistered", fleet, ami, "available", found, "rebuild")]
    deprecation = parse_time(image.get("DeprecationTime"))
    if deprecation is not None and deprecation <= obs.now:
        when = _dt.datetime.fromtimestamp(deprecation, tz=_dt.timezone.utc)
        found = f"deprecated since {when.isoformat(timespec='seconds')}"
        return [Drift("ami-deprecated", fleet, ami, "not deprecated", found, "rebuild")]
    return []


@dataclass(frozen=True)
class FixPlan:
    """What ``drift --fix`` does for one fleet, in order: restore, delete, replace or scale."""

    fleet: str
    restore: tuple[Drift, ...] = ()  # group settings put back to the release's
    delete_versions: tuple[int, ...] = ()
    replace: tuple[str, ...] = ()  # instance ids, oldest first
    scale: bool = False  # capacity back to the spec (part of a replacement, if there is one)
    left: tuple[Drift, ...] = ()  # drift --fix cannot remedy these

    @property
    def empty(self) -> bool:
        return not (self.restore or self.delete_versions or self.replace or self.scale)

    def actions(self) -> list[str]:
        """What will be done, in words (``--dry-run`` prints these)."""
        out = [f"restore {d.kind}: {d.found} -> {d.expected}" for d in self.restore]
        out += [f"delete launch template version {v}" for v in self.delete_versions]
        if self.replace:
            out.append(
                f"replace {len(self.replace)} instance(s) through the fleet's strategy: "
                + ", ".join(self.replace)
            )
        if self.scale:
            out.append("scale back to the spec's capacity")
        out += [f"left: {d.kind} {d.subject} ({REMEDIES[d.remedy]})" for d in self.left]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "fleet": self.fleet,
            "actions": self.actions(),
            "replace": list(self.replace),
            "delete_versions": list(self.delete_versions),
            "restore": [d.kind for d in self.restore],
            "scale": self.scale,
            "left": [d.to_dict() for d in self.left],
        }


def plan_fix(
    fleet: str, drifts: Sequence[Drift], *, kinds: frozenset[str] | None = None
) -> FixPlan:
    """The remedies for one fleet's drifts (only those of ``kinds``, when given)."""
    chosen = [d for d in drifts if d.fleet == fleet and (kinds is None or d.kind in kinds)]
    replace: list[str] = []
    for d in chosen:
        if d.remedy == "replace" and d.subject not in replace:
            replace.append(d.subject)
    return FixPlan(
        fleet=fleet,
        restore=tuple(d for d in chosen if d.remedy == "restore"),
        delete_versions=tuple(int(d.subject.split()[-1]) for d in chosen if d.remedy == "delete"),
        replace=tuple(replace),
        scale=any(d.remedy == "scale" for d in chosen),
        left=tuple(d for d in chosen if not d.fixable),
    )
