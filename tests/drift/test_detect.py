"""``drift.detect`` and ``drift.plan_fix`` as pure functions over observed data."""

from __future__ import annotations

from typing import Any

import pytest

from immutable_sdk.aws.drift import TemplateVersion
from immutable_sdk.aws.fleet import GroupState, Member
from immutable_sdk.clock import parse_time
from immutable_sdk.core.drift.detect import (
    Drift,
    FleetObservation,
    detect,
    plan_fix,
)
from immutable_sdk.spec.model import Capacity, FleetSpec, HealthSpec, PluginConfig
from immutable_sdk.state.base import ReleaseRecord

NOW = 1_800_000_000.0
DAY = 86_400.0
AMI = "ami-0123456789abcdef0"
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/abc"


def fleet(max_lifetime: float | None = None) -> FleetSpec:
    return FleetSpec(
        name="web",
        image="web",
        instance_type="t3.micro",
        capacity=Capacity(2, 2, 4),
        strategy=PluginConfig("rolling", {"type": "rolling"}),
        health=HealthSpec(),
        max_lifetime=max_lifetime,
    )


def member(i: str, release: str | None = "r-1", ami: str = AMI, age: float = DAY) -> Member:
    return Member(i, "InService", "Healthy", release, launched_at=NOW - age, ami=ami)


def group(*members: Member, **changes: Any) -> GroupState:
    settings: dict[str, Any] = {
        "fleet": "web",
        "name": "shop-web",
        "min": 2,
        "desired": 2,
        "max": 4,
        "launch_template": "shop-web",
        "version": "1",
        "target_groups": (TG,),
        "subnets": ("subnet-a", "subnet-b"),
        "tags": {"immutable-sdk:release": "r-1"},
        "members": members or (member("i-1"), member("i-2")),
        "health_check_type": "ELB",
    }
    settings.update(changes)
    return GroupState(**settings)


def record(release: str = "r-1") -> ReleaseRecord:
    return ReleaseRecord(
        fleet="web",
        release=release,
        seq=1,
        artifact={},
        launch_config={"image_id": AMI, "target_groups": [TG], "subnets": ["subnet-b", "subnet-a"]},
        created_at=NOW - 2 * DAY,
    )


def observe(
    g: GroupState | None = None,
    *,
    lifetime: float | None = None,
    versions: tuple[TemplateVersion, ...] = (TemplateVersion(1, "r-1", default=True),),
    image: dict[str, Any] | str | None = "available",
) -> FleetObservation:
    images: dict[str, Any] = {}
    if image == "available":
        images[AMI] = {"ImageId": AMI, "State": "available"}
    elif image != "not looked up":
        images[AMI] = image
    return FleetObservation(
        fleet=fleet(lifetime),
        group=g or group(),
        template="shop-web",
        now=NOW,
        release=record(),
        known_releases=frozenset({"r-0", "r-1"}),
        versions=versions,
        images=images,
    )


def found(obs: FleetObservation) -> set[tuple[str, str]]:
    return {(d.kind, d.subject) for d in detect(obs)}


def test_a_fleet_as_written_has_no_drift() -> None:
    assert detect(observe()) == []


def test_instances_of_another_release_ami_or_none() -> None:
    g = group(
        member("i-1"),
        member("i-2", release="r-0"),
        member("i-3", release=None, ami="ami-other"),
        member("i-4", ami="ami-other"),
        desired=4,
        max=4,
    )
    assert found(observe(g)) == {
        ("wrong-release", "i-2"),
        ("unmanaged", "i-3"),
        ("wrong-ami", "i-3"),
        ("wrong-ami", "i-4"),
        ("capacity", "group"),
    }


def test_age_judged_on_the_clock_against_max_lifetime() -> None:
    g = group(member("i-old", age=7 * DAY + 1), member("i-new", age=7 * DAY - 1))
    assert found(observe(g, lifetime=7 * DAY)) == {("expired", "i-old")}
    assert found(observe(g)) == set()  # no max_lifetime, no age limit
    (d,) = detect(observe(g, lifetime=7 * DAY))
    assert (d.expected, d.found, d.remedy) == ("younger than 7d", "7d 0h old", "replace")
    unknown = group(member("i-?", age=NOW), member("i-2"))  # launched_at 0: unknown
    assert found(observe(unknown, lifetime=DAY)) == set()


@pytest.mark.parametrize(
    ("changes", "kind"),
    [
        ({"min": 1}, "capacity"),
        ({"max": 9}, "capacity"),
        ({"launch_template": "someone-else"}, "launch-template"),
        ({"version": "2"}, "launch-template"),
        ({"target_groups": ()}, "target-groups"),
        ({"target_groups": (TG, "arn:other")}, "target-groups"),
        ({"subnets": ("subnet-a",)}, "subnets"),
        ({"health_check_type": "EC2"}, "health-check-type"),
        ({"suspended": frozenset({"AZRebalance"})}, "suspended-processes"),
    ],
)
def test_group_settings(changes: dict[str, Any], kind: str) -> None:
    (d,) = detect(observe(group(**changes)))
    assert (d.kind, d.subject) == (kind, "group")
    assert d.remedy == ("scale" if kind == "capacity" else "restore")


def test_launch_template_versions_written_outside() -> None:
    versions = (
        TemplateVersion(1, "r-1", default=True),
        TemplateVersion(2, None),  # no release tag
        TemplateVersion(3, "r-9"),  # a release the state never recorded
        TemplateVersion(4, "r-1"),  # a copy of the SDK's version with changes
        TemplateVersion(5, "r-0"),  # an earlier release: fine
    )
    drifts = detect(observe(versions=versions))
    assert {(d.kind, d.subject, d.remedy) for d in drifts} == {
        ("foreign-version", "version 2", "delete"),
        ("foreign-version", "version 3", "delete"),
        ("foreign-version", "version 4", "delete"),
    }
    # the SDK's version is the lowest that carries the release; the group uses it
    assert found(observe(group(version="4"), versions=versions)) >= {("launch-template", "group")}


def test_a_foreign_default_version_needs_a_person() -> None:
    versions = (TemplateVersion(1, None, default=True), TemplateVersion(2, "r-1"))
    (d,) = detect(observe(group(version="2"), versions=versions))
    assert (d.kind, d.remedy, d.fixable) == ("foreign-version", "manual", False)


def test_the_releases_image_deregistered_or_deprecated() -> None:
    assert found(observe(image=None)) == {("ami-deregistered", AMI)}
    assert found(observe(image={"ImageId": AMI, "State": "deregistered"})) == {
        ("ami-deregistered", AMI)
    }
    past = {"ImageId": AMI, "State": "available", "DeprecationTime": "2027-01-01T00:00:00.000Z"}
    assert parse_time(past["DeprecationTime"]) < NOW
    (d,) = detect(observe(image=past))
    assert (d.kind, d.remedy, d.fixable) == ("ami-deprecated", "rebuild", False)
    assert d.found == "deprecated since 2027-01-01T00:00:00+00:00"
    future = {**past, "DeprecationTime": "2031-01-01T00:00:00Z"}
    assert detect(observe(image=future)) == []
    assert detect(observe(image="not looked up")) == []


def test_a_group_without_a_known_release_asks_for_apply() -> None:
    g = group(tags={})
    (d,) = detect(observe(g))
    assert (d.kind, d.remedy) == ("no-release", "apply")
    obs = observe()
    unknown = FleetObservation(**{**obs.__dict__, "release": None})
    assert [d.kind for d in detect(unknown)] == ["no-release"]
    stopped = FleetObservation(**{**unknown.__dict__, "group": group(suspended=frozenset({"X"}))})
    assert [d.kind for d in detect(stopped)] == ["no-release", "suspended-processes"]


def test_plan_fix_groups_remedies_and_keeps_instance_order() -> None:
    drifts = [
        Drift("expired", "web", "i-1", "", "", "replace"),
        Drift("unmanaged", "web", "i-2", "", "", "replace"),
        Drift("wrong-ami", "web", "i-2", "", "", "replace"),
        Drift("capacity", "web", "group", "", "", "scale"),
        Drift("target-groups", "web", "group", "", "", "restore"),
        Drift("foreign-version", "web", "version 7", "", "", "delete"),
        Drift("ami-deprecated", "web", AMI, "", "", "rebuild"),
        Drift("capacity", "api", "group", "", "", "scale"),
    ]
    plan = plan_fix("web", drifts)
    assert plan.replace == ("i-1", "i-2")
    assert plan.delete_versions == (7,)
    assert plan.scale and [d.kind for d in plan.restore] == ["target-groups"]
    assert [d.kind for d in plan.left] == ["ami-deprecated"]
    assert plan.actions()[-1].startswith("left: ami-deprecated")
    lifetime = plan_fix("web", drifts, kinds=frozenset({"expired"}))
    assert (lifetime.replace, lifetime.scale, lifetime.restore) == (("i-1",), False, ())
    assert plan_fix("db", drifts).empty
