"""Lifetime: ``recycle`` (and ``apply(recycle=True)``) replaces only instances past max_lifetime."""

from __future__ import annotations

import time

from immutable_sdk.clock import VirtualClock

from .conftest import AMI_V1, DAY, World, drift_spec, launch_times, real_now_clock


def two_generations(world: World) -> tuple[list[str], str, float, float]:
    """Two instances launched a second before a third.

    Returns (old, young, a time when none is past max_lifetime yet, a time when only the old
    ones are)."""
    real_now_clock(world)
    world.write(drift_spec(desired=2, max_lifetime="7d"))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    old = sorted(i["InstanceId"] for i in world.group()["Instances"])
    time.sleep(1.1)  # launch times have whole seconds
    world.write(drift_spec(desired=3, max_lifetime="7d"))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().fleet("web").outcome == "scaled"
    (young,) = [i["InstanceId"] for i in world.group()["Instances"] if i["InstanceId"] not in old]
    born = launch_times(world, [*old, young])
    assert max(born[i] for i in old) < born[young]
    first, last = min(born[i] for i in old), max(born[i] for i in old)
    return old, young, first + 7 * DAY - 0.5, last + 7 * DAY + 0.5


def test_recycle_replaces_only_instances_older_than_max_lifetime(world: World) -> None:
    old, young, sooner, later = two_generations(world)
    world.clock = VirtualClock(start=sooner)  # half a second short of a week
    with world.engine(AMI_V1) as engine:
        assert engine.recycle() == []
    world.clock = VirtualClock(start=later)
    with world.engine(AMI_V1) as engine:
        (planned,) = engine.recycle(dry_run=True)
        assert planned.outcome == "planned" and set(planned.plan.replace) == set(old)
        assert {i["InstanceId"] for i in world.group()["Instances"]} == {*old, young}
        world.events.clear()
        (fix,) = engine.recycle()
    assert fix.ok and fix.rollout is not None and fix.rollout.action == "recycle"
    assert set(fix.rollout.retired) == set(old)
    assert len(fix.rollout.launched) == 2
    members = {i["InstanceId"] for i in world.group()["Instances"]}
    assert members == {young, *fix.rollout.launched}
    assert world.group()["DesiredCapacity"] == 3
    # the rollout went through the strategy's steps: launch, gate, retire
    kinds = [e.data["step"]["kind"] for e in world.of_kind("step.started")]
    assert kinds[:3] == ["launch", "gate", "retire"]
    with world.engine(AMI_V1) as engine:
        assert engine.recycle() == []  # nothing old any more
        assert engine.drift().clean


def test_apply_with_recycle_replaces_old_instances_after_a_noop_plan(world: World) -> None:
    old, _young, _sooner, later = two_generations(world)
    world.clock = VirtualClock(start=later)
    with world.engine(AMI_V1) as engine:
        plan = engine.plan()
        assert not plan.changes
        result = engine.apply(plan, recycle=True)
    assert result.ok
    noop, recycled = result.fleets
    assert (noop.outcome, recycled.action, recycled.outcome) == ("noop", "recycle", "promoted")
    assert set(recycled.retired) == set(old)
    assert result.api_calls["by_operation"].get("autoscaling.DetachInstances")
