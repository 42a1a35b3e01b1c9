"""A rollout is never recorded finished while two releases serve (read from AWS at the end).

An instance of the fleet that serves from outside its group (registered in the target group)
stands for any way the runner's picture and AWS can disagree. Promoting or rolling back with it
there records nothing: the rollout stays unfinished, and the next apply finishes it.
"""

from __future__ import annotations

from typing import Any

import pytest

from immutable_sdk.plugin import TAG_FLEET, TAG_PROJECT, TAG_RELEASE, hookimpl
from immutable_sdk.state.sqlite import SqliteStateStore

from .conftest import AMI_V1, AMI_V2, World, fleet_spec
from .durable import assert_converged

pytestmark = pytest.mark.slow


def stray(world: World, release: str, ami: str) -> str:
    """An instance of the fleet's ``release`` serving from outside its group."""
    group = world.group()
    out = world.client("ec2").run_instances(
        ImageId=ami,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        SubnetId=group["VPCZoneIdentifier"].split(",")[0],
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": TAG_PROJECT, "Value": "shop"},
                    {"Key": TAG_FLEET, "Value": "web"},
                    {"Key": TAG_RELEASE, "Value": release},
                ],
            }
        ],
    )
    instance = str(out["Instances"][0]["InstanceId"])
    for tg in group["TargetGroupARNs"]:
        world.client("elbv2").register_targets(TargetGroupArn=tg, Targets=[{"Id": instance}])
    return instance


class StrayAtLastRetire:
    """Registers a stray instance of ``release`` when the last retire of a rollout starts."""

    def __init__(self, world: World, release: str, ami: str, *, rollback: bool) -> None:
        self.world, self.release, self.ami, self.rollback = world, release, ami, rollback
        self.rolling_back = False
        self.instance: str | None = None

    @hookimpl
    def immutable_sdk_rollback_started(self, rollout: Any, reason: str) -> None:
        self.rolling_back = True

    @hookimpl
    def immutable_sdk_step_started(self, rollout: Any, step: Any) -> None:
        if self.instance is None and step.kind == "retire" and self.rolling_back == self.rollback:
            self.instance = stray(self.world, self.release, self.ami)


def unfinished(world: World) -> Any:
    with SqliteStateStore(world.tmp / "state.db", "shop") as state:
        return state.unfinished_rollout("web")


def test_not_promoted_while_the_previous_release_still_serves(world: World) -> None:
    world.write(fleet_spec(desired=2))
    with world.engine(AMI_V1) as engine:
        v1 = engine.apply().fleet("web").to_release or ""
    world.events.clear()
    plugin = StrayAtLastRetire(world, v1, AMI_V1, rollback=False)
    world.extra_plugins.append(plugin)
    with world.engine(AMI_V2) as engine:
        result = engine.apply()
    world.extra_plugins.clear()
    web = result.fleet("web")
    assert plugin.instance is not None
    assert web.outcome == "failed" and not result.ok, web.to_dict()
    assert f"release {v1}: 1 instance(s) ({plugin.instance})" in (web.error or "")
    assert "stays unfinished" in (web.error or "")
    record = unfinished(world)
    assert record is not None and record.id == web.rollout
    assert (record.outcome, record.phase) == (None, "verifying")
    assert not [e for e in world.events if e.kind == "rollout.finished"]

    with world.engine(AMI_V2) as engine:
        again = engine.apply()
    done = again.fleet("web")
    assert again.ok and (done.outcome, done.rollout) == ("promoted", record.id), done.to_dict()
    assert_converged(
        world, done.to_release or "", AMI_V2, desired=2, releases=[v1, web.to_release or ""]
    )
    assert unfinished(world) is None


def test_not_rolled_back_while_the_failed_release_still_serves(world: World) -> None:
    checks = "        - {type: ec2}\n        - {type: cloudwatch-alarm, alarms: [shop-5xx]}"
    world.write(fleet_spec(desired=2, checks=checks))
    with world.engine(AMI_V1) as engine:
        v1 = engine.apply().fleet("web").to_release or ""
    world.client("cloudwatch").set_alarm_state(
        AlarmName="shop-5xx", StateValue="ALARM", StateReason="5xx"
    )
    with world.engine(AMI_V2) as engine:
        v2 = engine.plan().item("web").release or ""
    plugin = StrayAtLastRetire(world, v2, AMI_V2, rollback=True)
    world.extra_plugins.append(plugin)
    with world.engine(AMI_V2) as engine:
        result = engine.apply()
    world.extra_plugins.clear()
    web = result.fleet("web")
    assert plugin.instance is not None
    assert web.outcome == "rollback_unfinished", web.to_dict()
    assert f"release {v2}: 1 instance(s)" in (web.error or "")
    record = unfinished(world)
    assert record is not None and (record.outcome, record.phase) == (None, "rolling_back")

    with world.engine(AMI_V2) as engine:
        again = engine.apply()
    done = again.fleet("web")
    assert (done.outcome, done.rollout, done.rolled_back_to) == ("rolled_back", record.id, v1)
    assert_converged(world, v1, AMI_V1, desired=2, releases=[v1])
    assert unfinished(world) is None
