"""The main job end to end on the emulator: rolling replacement, gates, rollback, noop."""

from __future__ import annotations

from immutable_sdk.plugin import TAG_RELEASE, hookimpl

from .conftest import AMI_V1, AMI_V2, World, fleet_spec, tag


def test_ten_instances_in_batches_of_three_keep_full_healthy_capacity(world: World) -> None:
    world.write(
        fleet_spec(desired=10, strategy="{type: rolling, batch_size: 3, min_healthy: 100%}")
    )
    with world.engine(AMI_V1) as engine:
        first = engine.apply()
    assert first.ok, first.to_dict()
    assert first.fleet("web").outcome == "promoted"
    old_release = first.fleet("web").to_release
    assert len(world.running(AMI_V1)) == 10

    world.events.clear()
    asked: list[int] = []  # instances in each DescribeInstanceStatus of the ec2 check
    with world.engine(AMI_V2) as engine:
        engine.session.events.register(
            "provide-client-params.ec2.DescribeInstanceStatus",
            lambda params, **_: asked.append(len(params.get("InstanceIds", []))),
        )
        plan = engine.plan()
        assert plan.item("web").action == "replace"
        assert "image_id changed" in plan.item("web").reasons
        result = engine.apply(plan)
    assert result.ok, result.to_dict()
    # Each gate asks about the batch it launched, not the whole release; the group is read
    # once a batch (the launch's poll), not before and after every step.
    assert asked and set(asked) <= {3, 1}
    assert result.api_calls["by_operation"]["autoscaling.DescribeAutoScalingGroups"] <= 4 + 3
    # A retire followed by a launch of as many is one detach that keeps the desired capacity
    # (the group launches the next batch): group updates are the provisioning, the first
    # launch, the last (smaller) launch and the end's bounds.
    assert result.api_calls["by_operation"]["autoscaling.UpdateAutoScalingGroup"] == 4
    merged = [
        e.data for e in world.of_kind("step.finished") if e.data.get("replacements") is not None
    ]
    assert [m["replacements"] for m in merged] == [3, 3]
    web = result.fleet("web")
    assert (web.from_release, web.outcome) == (old_release, "promoted")
    assert len(web.launched) == 10 and len(web.retired) == 10

    members = world.members()
    assert len(members) == 10
    assert {m["ImageId"] for m in members} == {AMI_V2}
    assert {tag(m, TAG_RELEASE) for m in members} == {web.to_release}
    assert world.running(AMI_V1) == []  # the old instances are gone, not just detached
    # Batches of 3 (3, 3, 3, 1), each launched before anything old was retired ...
    launches = [
        e.data["step"]["count"]
        for e in world.of_kind("step.started")
        if e.data["step"]["kind"] == "launch"
    ]
    assert launches == [3, 3, 3, 1]
    # ... and healthy in-service capacity never below 10 at any observed moment.
    healthy = [e.data["healthy"] for e in world.of_kind("capacity")]
    assert len(healthy) > 10
    assert min(healthy) >= 10
    group = world.group()
    assert (group["MinSize"], group["DesiredCapacity"], group["MaxSize"]) == (10, 10, 20)
    assert not group.get("SuspendedProcesses")


def test_http_check_failing_on_the_new_release_rolls_back(world: World, health_server) -> None:
    ec2 = world.client("ec2")

    def answer(instance_id: str) -> int:
        image = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][
            0
        ]["ImageId"]
        return 500 if image == AMI_V2 else 200

    server = health_server(answer)
    checks = (
        "        - {type: ec2}\n"
        f"        - {{type: http, url: 'http://127.0.0.1:{server.port}/health/{{instance_id}}',"
        " successes: 1, failures: 2}"
    )
    world.write(fleet_spec(desired=4, checks=checks))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    group_before = world.group()
    old_version = group_before["LaunchTemplate"]["Version"]

    with world.engine(AMI_V2) as engine:
        result = engine.apply()
    web = result.fleet("web")
    assert not result.ok
    assert web.outcome == "rolled_back"
    assert web.rolled_back_to == web.from_release
    assert "http" in (web.error or "")
    assert web.failed_instances and set(web.failed_instances) <= set(web.launched)
    # Nothing of the failed release is left, anywhere.
    assert world.running(AMI_V2) == []
    members = world.members()
    assert len(members) == 4
    assert {m["ImageId"] for m in members} == {AMI_V1}
    group = world.group()
    assert group["LaunchTemplate"]["Version"] == old_version
    assert group["DesiredCapacity"] == 4
    versions = ec2.describe_launch_template_versions(LaunchTemplateName="shop-web")
    assert {
        tag_
        for v in versions["LaunchTemplateVersions"]
        for spec in v["LaunchTemplateData"].get("TagSpecifications", [])
        for t in spec["Tags"]
        if t["Key"] == TAG_RELEASE
        for tag_ in [t["Value"]]
    } == {web.from_release}
    assert any(e.kind == "rollback.started" for e in world.events)


def test_alarm_in_alarm_during_a_bake_rolls_back(world: World) -> None:
    cw = world.client("cloudwatch")
    checks = "        - {type: ec2}\n        - {type: cloudwatch-alarm, alarms: [shop-5xx]}"
    world.write(
        fleet_spec(desired=4, checks=checks, strategy="{type: rolling, batch_size: 2, bake: 10m}")
    )

    class AlarmDuringBake:
        """Sets the alarm to ALARM when the second rollout's first bake starts."""

        armed = False

        @hookimpl
        def immutable_sdk_step_started(self, rollout, step) -> None:
            if self.armed and step.kind == "bake":
                cw.set_alarm_state(
                    AlarmName="shop-5xx", StateValue="ALARM", StateReason="5xx above 1%"
                )

    plugin = AlarmDuringBake()
    world.extra_plugins.append(plugin)
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    plugin.armed = True
    with world.engine(AMI_V2) as engine:
        result = engine.apply()
    web = result.fleet("web")
    assert web.outcome == "rolled_back"
    assert "shop-5xx" in (web.error or "")
    assert world.running(AMI_V2) == []
    assert {m["ImageId"] for m in world.members()} == {AMI_V1}
    bakes = [e for e in world.of_kind("step.finished") if e.data.get("outcome") == "failed"]
    assert bakes, "the bake step must be the one that failed"


def test_apply_again_is_a_noop_with_no_mutating_calls(world: World) -> None:
    world.write(fleet_spec(desired=3))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    with world.engine(AMI_V1) as engine:
        plan = engine.plan()
        assert not plan.changes
        result = engine.apply(plan)
    assert result.ok
    assert result.fleet("web").outcome == "noop"
    assert result.api_calls["mutating"] == 0
    assert not any(
        not op.split(".", 1)[1].startswith(("Describe", "Get", "List"))
        for op in result.api_calls["by_operation"]
    )


def test_capacity_change_alone_is_a_scale(world: World) -> None:
    world.write(fleet_spec(desired=2))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    world.write(fleet_spec(desired=3))
    with world.engine(AMI_V1) as engine:
        plan = engine.plan()
        assert plan.item("web").action == "scale"
        assert engine.apply(plan).fleet("web").outcome == "scaled"
    assert world.group()["DesiredCapacity"] == 3


def test_manual_rollback_replaces_with_the_previous_release(world: World) -> None:
    world.write(fleet_spec(desired=2))
    with world.engine(AMI_V1) as engine:
        v1 = engine.apply().fleet("web").to_release
    with world.engine(AMI_V2) as engine:
        assert engine.apply().ok
        back = engine.rollback("web")
    assert back.outcome == "promoted" and back.to_release == v1
    assert {m["ImageId"] for m in world.members()} == {AMI_V1}


def test_processes_left_suspended_are_resumed_by_apply_as_a_scale(world: World) -> None:
    world.write(fleet_spec(desired=2))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    world.client("autoscaling").suspend_processes(
        AutoScalingGroupName="shop-web", ScalingProcesses=["AZRebalance", "ScheduledActions"]
    )
    with world.engine(AMI_V1) as engine:
        plan = engine.plan()
        item = plan.item("web")
        assert item.action == "scale"
        assert item.reasons == ("processes left suspended: AZRebalance, ScheduledActions",)
        assert engine.apply(plan).fleet("web").outcome == "scaled"
        assert engine.plan().item("web").action == "noop"
    assert not world.group().get("SuspendedProcesses")
