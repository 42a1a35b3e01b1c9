"""Out-of-band changes on the emulator: each reported with its kind, fixed immutably, gone after."""

from __future__ import annotations

import time

from immutable_sdk.clock import VirtualClock
from immutable_sdk.plugin import TAG_RELEASE

from .conftest import AMI_V1, AMI_V2, DAY, World, drift_spec, launch_times, real_now_clock


def kinds(report) -> set[tuple[str, str]]:
    return {(d.kind, d.subject) for d in report.drifts}


def attach_foreign_instance(world: World) -> str:
    """An instance launched by hand from another AMI and attached to the group."""
    subnet = world.group()["VPCZoneIdentifier"].split(",")[0]
    out = world.client("ec2").run_instances(
        ImageId=AMI_V2, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnet
    )
    instance = out["Instances"][0]["InstanceId"]
    world.client("autoscaling").attach_instances(
        InstanceIds=[instance], AutoScalingGroupName="shop-web"
    )
    return instance


def test_a_fresh_fleet_has_no_drift(world: World) -> None:
    real_now_clock(world)
    world.write(drift_spec(desired=2, max_lifetime="7d"))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
        report = engine.drift()
    assert report.clean, report.to_dict()
    assert [f.skipped for f in report.fleets] == [None]
    # one batched read of each kind; nothing mutating
    assert all(op.split(".")[1].startswith("Describe") for op in report.api_calls)


def test_foreign_instance_hand_set_capacity_and_old_instances(world: World) -> None:
    real_now_clock(world)
    world.write(drift_spec(desired=2, max_lifetime="7d"))
    with world.engine(AMI_V1) as engine:
        release = engine.apply().fleet("web").to_release
    old = sorted(i["InstanceId"] for i in world.group()["Instances"])
    time.sleep(1.1)  # launch times have whole seconds: the next ones must be younger
    world.client("autoscaling").set_desired_capacity(
        AutoScalingGroupName="shop-web", DesiredCapacity=3
    )
    (young,) = [i["InstanceId"] for i in world.group()["Instances"] if i["InstanceId"] not in old]
    foreign = attach_foreign_instance(world)
    born = launch_times(world, [*old, young, foreign])
    assert max(born[i] for i in old) < born[young] <= born[foreign]
    # A week and half a second after the first launches: only `old` outlived max_lifetime.
    world.clock = VirtualClock(start=max(born[i] for i in old) + 7 * DAY + 0.5)

    with world.engine(AMI_V1) as engine:
        report = engine.drift()
    assert kinds(report) == {
        ("expired", old[0]),
        ("expired", old[1]),
        ("unmanaged", foreign),
        ("wrong-ami", foreign),
        ("capacity", "group"),
    }
    by_kind = {d.kind: d for d in report.drifts}
    assert (by_kind["wrong-ami"].expected, by_kind["wrong-ami"].found) == (AMI_V1, AMI_V2)
    assert by_kind["capacity"].expected == "min=2 desired=2 max=4"
    assert by_kind["capacity"].found == "min=2 desired=4 max=4"
    assert {d.remedy for d in report.drifts if d.subject != "group"} == {"replace"}
    assert by_kind["capacity"].remedy == "scale"

    world.events.clear()
    with world.engine(AMI_V1) as engine:
        fixed = engine.drift(fix=True)
    assert fixed.remaining == [], fixed.to_dict()
    (fix,) = fixed.fixes
    assert fix.ok and fix.outcome == "fixed"
    assert set(fix.plan.replace) == {*old, foreign} and fix.plan.replace[-1] == foreign
    assert fix.rollout is not None and fix.rollout.outcome == "promoted"
    assert set(fix.rollout.retired) == {*old, foreign}
    assert set(fix.rollout.retired[:2]) == set(old)  # oldest first
    assert len(fix.rollout.launched) == 1  # back to desired 2 with `young`
    # Replaced, never patched: the drifted ones are terminated; what runs is the release.
    states = {i["InstanceId"]: i["State"]["Name"] for i in world.instances([*old, foreign])}
    assert set(states.values()) <= {"terminated", "shutting-down"}
    members = world.members()
    assert {m["InstanceId"] for m in members} == {young, *fix.rollout.launched}
    assert {m["ImageId"] for m in members} == {AMI_V1}
    assert {t["Value"] for m in members for t in m["Tags"] if t["Key"] == TAG_RELEASE} == {release}
    group = world.group()
    assert (group["MinSize"], group["DesiredCapacity"], group["MaxSize"]) == (2, 2, 4)
    assert [e.data["action"] for e in world.of_kind("rollout.started")] == ["drift-fix"]
    with world.engine(AMI_V1) as engine:
        assert engine.drift().clean


def test_group_settings_changed_outside_are_restored(world: World) -> None:
    real_now_clock(world)
    world.write(drift_spec(desired=2))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    before = world.group()
    asg, ec2 = world.client("autoscaling"), world.client("ec2")
    asg.detach_load_balancer_target_groups(
        AutoScalingGroupName="shop-web", TargetGroupARNs=before["TargetGroupARNs"]
    )
    asg.update_auto_scaling_group(AutoScalingGroupName="shop-web", HealthCheckType="EC2")
    foreign = ec2.create_launch_template_version(
        LaunchTemplateName="shop-web", LaunchTemplateData={"InstanceType": "t3.large"}
    )["LaunchTemplateVersion"]["VersionNumber"]
    asg.update_auto_scaling_group(
        AutoScalingGroupName="shop-web",
        LaunchTemplate={"LaunchTemplateName": "shop-web", "Version": str(foreign)},
    )

    with world.engine(AMI_V1) as engine:
        report = engine.drift()
        assert kinds(report) == {
            ("target-groups", "group"),
            ("health-check-type", "group"),
            ("launch-template", "group"),
            ("foreign-version", f"version {foreign}"),
        }
        fixed = engine.drift(fix=True)
    assert fixed.remaining == [], fixed.to_dict()
    assert fixed.fixes[0].rollout is None  # settings only: nothing was replaced
    after = world.group()
    assert after["TargetGroupARNs"] == before["TargetGroupARNs"]
    assert after["HealthCheckType"] == "ELB"
    assert after["LaunchTemplate"]["Version"] == before["LaunchTemplate"]["Version"]
    versions = ec2.describe_launch_template_versions(LaunchTemplateName="shop-web")
    assert [v["VersionNumber"] for v in versions["LaunchTemplateVersions"]] == [
        int(before["LaunchTemplate"]["Version"])
    ]
    assert {i["InstanceId"] for i in after["Instances"]} == {
        i["InstanceId"] for i in before["Instances"]
    }


def test_desired_capacity_alone_is_a_scale(world: World) -> None:
    real_now_clock(world)
    world.write(drift_spec(desired=2))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    world.client("autoscaling").set_desired_capacity(
        AutoScalingGroupName="shop-web", DesiredCapacity=3
    )
    world.events.clear()
    with world.engine(AMI_V1) as engine:
        assert kinds(engine.drift()) == {("capacity", "group")}
        fixed = engine.drift(fix=True)
    assert fixed.remaining == []
    assert fixed.fixes[0].plan.scale and fixed.fixes[0].rollout is None
    assert world.group()["DesiredCapacity"] == 2
    assert not any(e.kind == "rollout.started" for e in world.events)  # a scale, no rollout


def test_a_deregistered_image_under_a_running_fleet_is_left_for_a_rebuild(world: World) -> None:
    real_now_clock(world)
    world.write(drift_spec(desired=1))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    world.client("ec2").deregister_image(ImageId=AMI_V1)
    world.events.clear()
    with world.engine(AMI_V1) as engine:
        report = engine.drift()
        assert kinds(report) == {("ami-deregistered", AMI_V1)}
        fixed = engine.drift(fix=True)
    assert [d.kind for d in fixed.remaining or []] == ["ami-deregistered"]
    assert fixed.fixes[0].outcome == "nothing"
    assert not any(e.kind == "rollout.started" for e in world.events)


def test_a_fleet_with_a_rollout_in_progress_is_not_judged(world: World) -> None:
    real_now_clock(world)
    world.write(drift_spec(desired=1))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
        rollout = engine.state.rollouts("web")[0]
        engine.state.update_rollout(rollout.id, outcome=None, finished_at=None)
        world.client("autoscaling").set_desired_capacity(
            AutoScalingGroupName="shop-web", DesiredCapacity=2
        )
        report = engine.drift()
    assert report.clean
    assert report.fleets[0].skipped == (
        f"rollout {rollout.id} is unfinished (promoted): apply finishes it"
    )
    with world.engine(AMI_V1) as engine:  # a process runs it: in progress
        engine.state.acquire_lock("web", "host:1:live", 60, world.clock.now())
        report = engine.drift()
    assert report.fleets[0].skipped == f"rollout {rollout.id} is in progress"


def test_suspended_processes_are_drift_and_fix_resumes_them(world: World) -> None:
    real_now_clock(world)
    world.write(drift_spec(desired=1))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    asg = world.client("autoscaling")
    asg.suspend_processes(
        AutoScalingGroupName="shop-web", ScalingProcesses=["AZRebalance", "Launch"]
    )
    with world.engine(AMI_V1) as engine:
        report = engine.drift()
        (d,) = report.drifts
        assert (d.kind, d.subject, d.found, d.remedy) == (
            "suspended-processes",
            "group",
            "AZRebalance, Launch",
            "restore",
        )
        fixed = engine.drift(fix=True)
    assert fixed.remaining == [], fixed.to_dict()
    assert fixed.fixes[0].rollout is None
    assert not world.group().get("SuspendedProcesses")


def test_traffic_fleets_are_listed_as_not_inspected(world: World) -> None:
    world.write(
        drift_spec(desired=1, strategy="{type: blue-green}").replace(
            "    load_balancer: {target_groups: [shop-web]}\n", ""
        )
        + "    traffic:\n"
        + "      route53: {zone: shop.example.com., record: web.shop.example.com}\n"
        + "      slots:\n"
        + "        blue: {target_group: shop-blue}\n"
        + "        green: {target_group: shop-green}\n"
    )
    with world.engine(AMI_V1) as engine:
        report = engine.drift()
    assert report.clean
    assert report.fleets[0].skipped == "a traffic fleet: its slot groups are not inspected yet"
