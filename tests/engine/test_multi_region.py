"""Fleets in several regions on the emulator: one unit per (fleet, region), waves over regions."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from immutable_sdk.cli.render import console, plan_table
from immutable_sdk.errors import UsageError
from immutable_sdk.lifecycle import Event
from immutable_sdk.plugin import RolloutInfo, hookimpl

from .conftest import AMI_V1, AMI_V2, World

WEST = "us-west-2"
SPEC = """
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web:
    builder: ami
    ids:
      us-east-1: ${EAST_AMI}
      us-west-2: ${WEST_AMI}
fleets:
"""
FLEET = """
  {name}:
    image: web
    regions: [us-east-1, us-west-2]
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {{min: 1, desired: 1, max: 2}}
    strategy: {{type: rolling, batch_size: 1, bake: 1m}}
    health:
      timeout: 5m
      interval: 10s
      checks:
        - {{type: ec2}}
        - {{type: cloudwatch-alarm, alarms: [shop-5xx]}}
"""


def client(world: World, service: str, region: str) -> Any:
    return boto3.client(service, endpoint_url=world.url, region_name=region)


def west_ami(world: World, east_ami: str) -> str:
    """The emulator's AMI in us-west-2 with the name of ``east_ami`` in us-east-1."""
    (image,) = world.client("ec2").describe_images(ImageIds=[east_ami])["Images"]
    found = client(world, "ec2", WEST).describe_images(
        Owners=["amazon"], Filters=[{"Name": "name", "Values": [image["Name"]]}]
    )["Images"]
    assert found, image["Name"]
    return str(found[0]["ImageId"])


def use_image(world: World, east_ami: str) -> tuple[str, str]:
    west = west_ami(world, east_ami)
    world.monkeypatch.setenv("EAST_AMI", east_ami)
    world.monkeypatch.setenv("WEST_AMI", west)
    return east_ami, west


def amis_of_group(world: World, region: str, name: str = "shop-web") -> set[str]:
    """The AMIs that the group's live instances in ``region`` run."""
    groups = client(world, "autoscaling", region).describe_auto_scaling_groups(
        AutoScalingGroupNames=[name]
    )["AutoScalingGroups"]
    if not groups:
        return set()
    ids = [i["InstanceId"] for i in groups[0]["Instances"]]
    out = client(world, "ec2", region).describe_instances(InstanceIds=ids)
    return {i["ImageId"] for r in out["Reservations"] for i in r["Instances"]}


def test_a_rolling_fleet_in_two_regions(world: World, tmp_path: Any) -> None:
    world.write(SPEC + FLEET.format(name="web"))
    east_v1, west_v1 = use_image(world, AMI_V1)

    class Told:
        """A plugin's view of the rollouts: fleet and region."""

        rollouts: list[tuple[str, str]] = []

        @hookimpl
        def immutable_sdk_rollout_started(self, rollout: RolloutInfo) -> None:
            self.rollouts.append((rollout.fleet, rollout.region))

    told = Told()
    world.extra_plugins.append(told)
    with world.engine() as engine:
        plan = engine.plan()
        assert [(i.key, i.region, i.action) for i in plan.items] == [
            ("web", "us-east-1", "create"),
            ("web@us-west-2", WEST, "create"),
        ]
        out = tmp_path / "plan.txt"
        with out.open("w") as f:
            console(f).print(plan_table(plan))
        lines = out.read_text().splitlines()
        header = [c.strip() for c in lines[2].strip("┃ ").split("┃")]
        assert header[:3] == ["fleet", "region", "action"], header
        cells = [[c.strip() for c in ln.split("│")[1:-1]] for ln in lines if "│" in ln]
        rows = [c for c in cells if c[0]]  # (long cells wrap onto lines of their own)
        assert [r[:3] for r in rows] == [["web", "us-east-1", "create"], ["web", WEST, "create"]]
        items = json.loads(json.dumps(plan.to_dict()))["items"]
        assert [(i["fleet"], i["region"], i["key"]) for i in items] == [
            ("web", "us-east-1", "web"),
            ("web", WEST, "web@us-west-2"),
        ]
        first = engine.apply(plan)
    assert first.ok, first.to_dict()
    assert [f.fleet for f in first.fleets] == ["web", "web@us-west-2"]
    # each region has its own group, running the AMI of its region
    assert amis_of_group(world, "us-east-1") == {east_v1}
    assert amis_of_group(world, WEST) == {west_v1}
    assert {e.fleet for e in world.of_kind("rollout.started")} == {"web", "web@us-west-2"}
    assert sorted(told.rollouts) == [("web", "us-east-1"), ("web", WEST)]

    east_v2, west_v2 = use_image(world, AMI_V2)
    with world.engine() as engine:
        second = engine.apply()
        assert [(f.fleet, f.outcome) for f in second.fleets] == [
            ("web", "promoted"),
            ("web@us-west-2", "promoted"),
        ]
        assert amis_of_group(world, "us-east-1") == {east_v2}
        assert amis_of_group(world, WEST) == {west_v2}
        again = engine.plan()
        assert not again.changes, [(i.key, i.reasons) for i in again.items]
        status = {e["fleet"]: e for e in engine.status()}
        assert {k: (e["region"], e["release"]) for k, e in status.items()} == {
            "web": ("us-east-1", second.fleet("web").to_release),
            "web@us-west-2": (WEST, second.fleet("web@us-west-2").to_release),
        }
        history = engine.history()
        assert [len(h["rollouts"]) for h in history.values()] == [2, 2]
        # operator actions take the unit key: this one rolls back us-west-2 only
        back = engine.rollback("web@us-west-2")
    assert back.ok and back.fleet == "web@us-west-2", back
    assert back.to_release == first.fleet("web@us-west-2").to_release
    assert amis_of_group(world, WEST) == {west_v1}
    assert amis_of_group(world, "us-east-1") == {east_v2}
    with world.engine() as engine, pytest.raises(UsageError, match=r"fleets: web, web@us-west-2"):
        engine.rollback("web@eu-west-1")


def _spans(events: list[Event]) -> dict[str, tuple[float, float]]:
    starts = {e.fleet: e.at for e in events if e.kind == "rollout.started"}
    ends = {e.fleet: e.at for e in events if e.kind == "rollout.finished"}
    return {str(k): (starts[k], ends[k]) for k in starts}


def test_waves_roll_one_region_first_and_stop_on_its_failure(world: World) -> None:
    waves = (
        "waves:\n"
        "  - {name: one-box, fleets: [web], regions: [us-west-2], bake: 30m}\n"
        "  - {name: rest, fleets: ['*'], max_regions_in_flight: 1}\n"
    )
    world.write(SPEC + FLEET.format(name="web") + FLEET.format(name="api") + waves)
    use_image(world, AMI_V1)
    with world.engine() as engine:
        plan = engine.plan()
        assert [(i.key, i.wave) for i in plan.items] == [
            ("web", "rest"),
            ("web@us-west-2", "one-box"),
            ("api", "rest"),
            ("api@us-west-2", "rest"),
        ]
        first = engine.apply(plan)
    assert first.ok, first.to_dict()
    spans = _spans(world.events)
    (bake,) = world.of_kind("wave.bake")
    assert bake.fleet == "web@us-west-2"
    # the wave bake watches the unit in its region (nothing runs in us-east-1 yet)
    watched = [e for e in world.of_kind("gate.poll") if e.at >= bake.at and e.at < bake.at + 1800]
    assert watched and {(e.fleet, e.data["instances"]) for e in watched} == {("web@us-west-2", 1)}
    one_box_end = bake.at + 1800
    assert all(s >= one_box_end for k, (s, _) in spans.items() if k != "web@us-west-2")
    # the rest wave: never two regions in flight at once
    region = {k: WEST if k.endswith("@us-west-2") else "us-east-1" for k in spans}
    for a, (a0, a1) in spans.items():
        for b, (b0, b1) in spans.items():
            if region[a] != region[b] and a != "web@us-west-2" != b:
                assert a1 <= b0 or b1 <= a0, (a, spans[a], b, spans[b])

    # a gate failure in us-west-2 (the region's own alarm) stops the later wave
    client(world, "cloudwatch", WEST).set_alarm_state(
        AlarmName="shop-5xx", StateValue="ALARM", StateReason="5xx in us-west-2"
    )
    world.events.clear()
    use_image(world, AMI_V2)
    with world.engine() as engine:
        second = engine.apply()
    outcomes = {f.fleet: f.outcome for f in second.fleets}
    assert outcomes == {
        "web": "blocked",
        "web@us-west-2": "rolled_back",
        "api": "blocked",
        "api@us-west-2": "blocked",
    }
    assert "wave 'one-box' failed" in (second.fleet("api@us-west-2").error or "")
    assert {e.fleet for e in world.of_kind("rollout.started")} == {"web@us-west-2"}
    assert amis_of_group(world, "us-east-1") == {AMI_V1}  # untouched
    assert amis_of_group(world, "us-east-1", "shop-api") == {AMI_V1}


def test_a_region_dropped_from_the_spec_is_planned_for_destruction(world: World) -> None:
    world.write(SPEC + FLEET.format(name="web"))
    use_image(world, AMI_V1)
    with world.engine() as engine:
        assert engine.apply().ok
    # The spec now deploys to us-east-1 only: nothing else names us-west-2, but the state
    # remembers web@us-west-2, so its group is not forgotten there.
    world.write(SPEC + FLEET.format(name="web").replace("[us-east-1, us-west-2]", "[us-east-1]"))
    with world.engine() as engine:
        plan = engine.plan()
        assert [(i.key, i.region, i.action) for i in plan.items] == [
            ("web", "us-east-1", "noop"),
            ("web@us-west-2", WEST, "destroy"),
        ]
        assert plan.item("web@us-west-2").reasons == (
            "the spec no longer names this fleet in us-west-2",
        )
        kept = engine.apply(plan)  # without --prune: reported, not destroyed
        assert kept.fleet("web@us-west-2").outcome == "skipped"
        assert amis_of_group(world, WEST) == {west_ami(world, AMI_V1)}
        pruned = engine.apply(prune=True)
    assert pruned.ok, pruned.to_dict()
    assert pruned.fleet("web@us-west-2").outcome == "destroyed"
    assert amis_of_group(world, WEST) == set()
    assert amis_of_group(world, "us-east-1") == {AMI_V1}
