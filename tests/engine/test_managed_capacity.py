"""Autoscaled fleets (issue 18): ``desired: managed``, target-tracking policies, batches from
the live desired capacity, and the scaling processes a rollout suspends, also after a crash.

Without ``managed`` the spec owns desired: a change behind the SDK's back is a ``scale`` in
``plan``, ``capacity`` drift, and ``apply`` resets it. With it, scaling policies own desired:
nothing fights them, and a rollout replaces as many instances as the group runs.
"""

from __future__ import annotations

from typing import Any

import pytest

from immutable_sdk.core.preview.schedule import plan_schedule
from immutable_sdk.plugin import hookimpl
from immutable_sdk.state.sqlite import SqliteStateStore

from .conftest import AMI_V1, AMI_V2, World
from .durable import CrashAtBoundary
from .test_resume import crashed_rollout

pytestmark = pytest.mark.slow

SPEC = """
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web:
    builder: ami
    id: ${{WEB_AMI}}
fleets:
  web:
    image: web
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    user_data: boot.sh
    capacity: {capacity}
    load_balancer: {{target_groups: [shop-web]}}
    strategy: {{type: rolling, batch_size: 50%, min_healthy: 100%}}
    health:
      timeout: 5m
      interval: 5s
      checks: [{{type: ec2}}, {{type: elb}}]
"""
FIXED = "{min: 2, desired: 2, max: 6}"
MANAGED = """
      min: 2
      max: 6
      desired: managed
      target_tracking:
        - {name: cpu, metric: cpu, target: %s, warmup: 2m}
"""


def spec(world: World, capacity: str) -> None:
    world.write(SPEC.format(capacity=capacity), AMI_V1)


def asg(world: World) -> Any:
    return world.client("autoscaling")


def set_desired(world: World, n: int) -> None:
    """What a scaling policy (or a person) does behind the SDK's back."""
    asg(world).set_desired_capacity(AutoScalingGroupName="shop-web", DesiredCapacity=n)


def policies(world: World) -> dict[str, Any]:
    found = asg(world).describe_policies(AutoScalingGroupName="shop-web")["ScalingPolicies"]
    return {p["PolicyName"]: p for p in found}


def test_a_fixed_desired_capacity_moved_behind_the_sdk_is_scaled_back(world: World) -> None:
    spec(world, FIXED)
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    set_desired(world, 4)
    with world.engine(AMI_V1) as engine:
        item = engine.plan().item("web")
        assert item.action == "scale" and "desired 4 -> 2" in item.reasons, item
        drift = engine.drift(["web"])
        assert [(d.kind, d.found) for d in drift.drifts] == [("capacity", "min=2 desired=4 max=6")]
        assert engine.apply().fleet("web").outcome == "scaled"
    assert world.group()["DesiredCapacity"] == 2


class Watch:
    """Records the group's suspended processes and desired capacity at every step."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.seen: list[tuple[set[str], int]] = []

    @hookimpl
    def immutable_sdk_step_started(self, rollout: Any, step: Any) -> None:
        g = self.world.group()
        self.seen.append(
            ({p["ProcessName"] for p in g["SuspendedProcesses"]}, g["DesiredCapacity"])
        )


def test_a_managed_desired_capacity_is_left_to_the_policies(world: World) -> None:
    spec(world, MANAGED % 50)
    with world.engine(AMI_V1) as engine:
        first = engine.apply()
    assert first.ok, first.to_dict()
    assert world.group()["DesiredCapacity"] == 2  # a new group starts at min
    policy = policies(world)["immutable-sdk-cpu"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["TargetTrackingConfiguration"]["TargetValue"] == 50.0
    assert policy["EstimatedInstanceWarmup"] == 120

    set_desired(world, 4)  # the policy scaled out
    with world.engine(AMI_V1) as engine:
        plan = engine.plan()
        assert plan.item("web").action == "noop" and not plan.changes, plan.item("web")
        assert engine.drift(["web"]).clean
        assert engine.apply().fleet("web").outcome == "noop"
    assert world.group()["DesiredCapacity"] == 4

    # A new release replaces the 4 instances the group runs, 2 at a time (50% of 4), with
    # the processes that would fight it suspended throughout, and ends at 4.
    watch = Watch(world)
    world.extra_plugins.append(watch)
    world.events.clear()
    with world.engine(AMI_V2) as engine:
        # plan --steps previews the same: batches of the live 4 (not 1 of min's 2)
        (steps,) = plan_schedule(engine, engine.plan()).fleets
        assert steps.desired == 4, steps.to_dict()
        launches = [r.text for r in steps.steps if r.kind == "launch"]
        assert launches == ["launch 2 instance(s) of the new release"] * 2, launches
        second = engine.apply()
    web = second.fleet("web")
    assert web.outcome == "promoted", web.to_dict()
    assert len(web.launched) == 4 and len(web.retired) == 4
    launches = [
        e.data["step"]["count"]
        for e in world.of_kind("step.started")
        if e.data["step"]["kind"] == "launch"
    ]
    assert launches == [2, 2]
    assert watch.seen and all(
        {"AlarmNotification", "ScheduledActions", "AZRebalance"} <= held for held, _ in watch.seen
    )
    group = world.group()
    assert group["DesiredCapacity"] == 4 and group["SuspendedProcesses"] == []
    assert {m["ImageId"] for m in world.members()} == {AMI_V2} and len(world.members()) == 4
    # the report's reference lines: the capacity this rollout kept (100% of the live 4)
    with SqliteStateStore(world.tmp / "state.db", "shop") as state:
        (context,) = [
            e.data for e in state.journal(web.rollout or "") if e.data.get("note") == "context"
        ]
    assert context["capacity"]["desired"] == 4 and context["min_healthy"] == 4, context


def test_scaling_policies_are_created_updated_and_removed(world: World) -> None:
    spec(world, MANAGED % 50)
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    asg(world).put_scaling_policy(  # a policy of someone else: never touched
        AutoScalingGroupName="shop-web",
        PolicyName="team-step",
        PolicyType="SimpleScaling",
        AdjustmentType="ChangeInCapacity",
        ScalingAdjustment=1,
    )
    spec(world, MANAGED % 70)
    with world.engine(AMI_V1) as engine:
        item = engine.plan().item("web")
        assert item.action == "scale", item
        assert any("scaling policy cpu changed" in r and "at 70" in r for r in item.reasons)
        assert engine.apply().fleet("web").outcome == "scaled"
    assert policies(world)["immutable-sdk-cpu"]["TargetTrackingConfiguration"]["TargetValue"] == 70
    spec(world, "{min: 2, max: 6, desired: managed}")
    with world.engine(AMI_V1) as engine:
        item = engine.plan().item("web")
        assert item.action == "scale" and "scaling policy cpu removed" in item.reasons, item
        engine.apply()
        assert engine.plan().item("web").action == "noop"
    assert sorted(policies(world)) == ["team-step"]


def test_processes_a_crashed_rollout_suspended_are_restored_by_apply(world: World) -> None:
    spec(world, MANAGED % 50)
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    set_desired(world, 4)
    record = crashed_rollout(world, CrashAtBoundary("started", 1))
    held = {p["ProcessName"] for p in world.group()["SuspendedProcesses"]}
    assert {"AlarmNotification", "ScheduledActions"} <= held
    with SqliteStateStore(world.tmp / "state.db", "shop") as state:
        notes = [e.data for e in state.journal(record.id) if "suspending" in e.data]
        assert notes and "AlarmNotification" in notes[0]["suspending"]
        assert state.get_rollout(record.id).data["desired"] == 4  # type: ignore[union-attr]
    with world.engine(AMI_V2) as engine:
        drift = engine.drift(["web"])
        assert drift.fleets[0].skipped  # an unfinished rollout: apply finishes it
        result = engine.apply()
    assert result.fleet("web").outcome == "promoted", result.to_dict()
    group = world.group()
    assert group["SuspendedProcesses"] == [] and group["DesiredCapacity"] == 4
    assert {m["ImageId"] for m in world.members()} == {AMI_V2} and len(world.members()) == 4


def test_processes_left_suspended_are_drift_and_a_scale(world: World) -> None:
    spec(world, MANAGED % 50)
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    asg(world).suspend_processes(
        AutoScalingGroupName="shop-web", ScalingProcesses=["AlarmNotification"]
    )
    with world.engine(AMI_V1) as engine:
        item = engine.plan().item("web")
        assert item.action == "scale", item
        assert "processes left suspended: AlarmNotification" in item.reasons
        kinds = [d.kind for d in engine.drift(["web"]).drifts]
        assert kinds == ["suspended-processes"]
        assert engine.apply().fleet("web").outcome == "scaled"
    assert world.group()["SuspendedProcesses"] == []
