"""Canary and blue-green rollouts between traffic slots, end to end on the emulator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from immutable_sdk.plugin import TAG_RELEASE, RolloutInfo, hookimpl

from .conftest import AMI_V1, AMI_V2, SlotWorld, slot_spec

CANARY = (
    "{type: canary, steps: [{weight: 10, bake: 5m}, {weight: 50, bake: 10m}, {weight: 100}],"
    " keep_previous: 1h}"
)


class Shifts:
    """Records every traffic shift: the hook's weights and what Route 53 says right then."""

    def __init__(self, world: SlotWorld) -> None:
        self.world = world
        self.seen: list[tuple[dict[str, int], dict[str, int], dict[str, int]]] = []
        self.on_shift: Any = None

    @hookimpl
    def immutable_sdk_traffic_shifted(
        self, rollout: RolloutInfo, before: Mapping[str, int], after: Mapping[str, int]
    ) -> None:
        self.seen.append((dict(before), dict(after), self.world.weights()))
        if self.on_shift is not None:
            self.on_shift(dict(after))


def first_release(world: SlotWorld, strategy: str = CANARY) -> str:
    world.write(slot_spec(strategy))
    with world.engine(AMI_V1) as engine:
        result = engine.apply()
    assert result.ok, result.to_dict()
    assert world.weights() == {"blue": 100, "green": 0}
    return str(result.fleet("checkout").to_release)


def test_canary_weights_follow_the_steps_and_the_old_slot_goes_after_keep_previous(
    slots: SlotWorld,
) -> None:
    old = first_release(slots)
    blue = slots.instances_of("blue")
    assert len(blue) == 4 and slots.state_of(blue) == {"running"}
    shifts = Shifts(slots)
    slots.extra_plugins.append(shifts)
    slots.events.clear()

    with slots.engine(AMI_V2) as engine:
        assert engine.plan().item("checkout").action == "replace"
        result = engine.apply()
    checkout = result.fleet("checkout")
    assert result.ok, result.to_dict()
    assert (checkout.from_release, checkout.outcome) == (old, "promoted")

    # After each shift Route 53 holds exactly the step's weights, and the hook saw them.
    expected = [
        {"blue": 90, "green": 10},
        {"blue": 50, "green": 50},
        {"blue": 0, "green": 100},
    ]
    assert [after for _, after, _ in shifts.seen] == expected
    assert [route53 for _, _, route53 in shifts.seen] == expected
    assert [before for before, _, _ in shifts.seen] == [{"blue": 100, "green": 0}, *expected[:2]]
    # The canary's group grew with its weight: 1 instance at 10%, 2 at 50%, 4 at 100%.
    provisions = [
        e.data["step"]["capacity"]
        for e in slots.of_kind("step.started")
        if e.data["step"]["kind"] == "provision"
    ]
    assert provisions == [1, 2, 4]
    # Bakes include the record's TTL (60 s) after each shift.
    bakes = [e.data for e in slots.of_kind("step.finished") if "dns_ttl_wait" in e.data]
    assert [(b["seconds"], b["dns_ttl_wait"]) for b in bakes] == [
        (300.0, 60.0),
        (600.0, 60.0),
        (3600.0, 60.0),
    ]

    # Final state: 0/100, the old slot retired only after keep_previous, nothing left of it.
    assert slots.weights() == {"blue": 0, "green": 100}
    full = next(e.at for e in slots.of_kind("traffic.shifted") if e.data["after"]["green"] == 100)
    retire = next(
        e
        for e in slots.of_kind("step.started")
        if e.data["step"]["kind"] == "retire" and e.data["step"]["slot"] == "blue"
    )
    assert retire.at - full >= 3600
    assert slots.slot("blue") == {}
    assert slots.state_of(blue) <= {"shutting-down", "terminated"}
    assert sorted(checkout.retired) == sorted(blue)
    green = slots.slot("green")
    assert (green["MinSize"], green["DesiredCapacity"], green["MaxSize"]) == (4, 4, 8)
    tags = {t["Key"]: t["Value"] for t in green["Tags"]}
    assert tags[TAG_RELEASE] == checkout.to_release
    assert {t["Key"]: t["Value"] for t in green["Tags"]}["immutable-sdk:slot"] == "green"

    # The plan is settled, and the next release goes back to blue.
    with slots.engine(AMI_V2) as engine:
        assert engine.plan().item("checkout").action == "noop"
        status = {e["fleet"]: e for e in engine.status()}["checkout"]
    assert status["release"] == checkout.to_release
    assert status["traffic"]["live"] == "green"
    assert status["traffic"]["slots"]["green"]["healthy"] == 4


def test_an_alarm_during_step_two_rolls_back_to_the_old_slot(slots: SlotWorld) -> None:
    first_release(slots)
    blue = slots.instances_of("blue")
    shifts = Shifts(slots)
    shifts.on_shift = lambda after: after["green"] == 50 and slots.set_alarm("ALARM")
    slots.extra_plugins.append(shifts)

    with slots.engine(AMI_V2) as engine:
        result = engine.apply()
    checkout = result.fleet("checkout")
    assert not result.ok
    assert checkout.outcome == "rolled_back"
    assert "checkout-5xx" in (checkout.error or "") and "ALARM" in (checkout.error or "")
    # Traffic went back to blue first, in one change, then the canary group went away.
    assert [after for _, after, _ in shifts.seen] == [
        {"blue": 90, "green": 10},
        {"blue": 50, "green": 50},
        {"blue": 100, "green": 0},
    ]
    assert slots.weights() == {"blue": 100, "green": 0}
    assert slots.slot("green") == {}
    assert slots.state_of(checkout.launched) <= {"shutting-down", "terminated"}
    assert slots.instances_of("blue") == blue and slots.state_of(blue) == {"running"}
    kinds = [e.kind for e in slots.events]
    assert kinds.index("rollback.started") < kinds.index(
        "traffic.shifted", kinds.index("rollback.started")
    )
    # The failed release's launch template version is gone; the previous one stays.
    versions = slots.client("ec2").describe_launch_template_versions(
        LaunchTemplateName="shop-checkout"
    )["LaunchTemplateVersions"]
    assert [v["VersionNumber"] for v in versions] == [1]

    # The failed release is quarantined (the slot deployer too): the next apply leaves the
    # fleet on blue even with the alarm cleared, until --retry-failed.
    slots.set_alarm("OK")
    shifts.on_shift = lambda after: None
    with slots.engine(AMI_V2) as engine:
        item = engine.plan().item("checkout")
        assert item.action == "blocked" and item.hold is not None, item
        assert (item.hold["rollout"], item.hold["checks"]) == (
            checkout.rollout,
            ["cloudwatch-alarm"],
        )
        again = engine.apply().fleet("checkout")
        assert (again.outcome, again.rollout) == ("quarantined", checkout.rollout), again
        assert slots.weights() == {"blue": 100, "green": 0}
        assert slots.instances_of("blue") == blue
        retried = engine.apply(retry_failed=True).fleet("checkout")
        assert (retried.outcome, retried.to_release) == ("promoted", checkout.to_release)
        assert engine.state.holds("checkout") == []


def test_blue_green_shifts_everything_at_once_and_keeps_the_previous_slot_warm(
    slots: SlotWorld,
) -> None:
    strategy = "{type: blue-green, bake: 10m, keep_previous: 30m}"
    first = first_release(slots, strategy)
    shifts = Shifts(slots)
    slots.extra_plugins.append(shifts)
    slots.events.clear()
    with slots.engine(AMI_V2) as engine:
        result = engine.apply()
    assert result.ok, result.to_dict()
    assert [after for _, after, _ in shifts.seen] == [{"blue": 0, "green": 100}]
    provisions = [
        e.data["step"]
        for e in slots.of_kind("step.started")
        if e.data["step"]["kind"] == "provision"
    ]
    assert provisions == [{"kind": "provision", "slot": "green", "capacity": 4}]
    shifted = slots.of_kind("traffic.shifted")[0].at
    retired = slots.of_kind("step.finished")[-1]
    assert retired.data["slot"] == "blue" and retired.at - shifted >= 600 + 60 + 1800
    assert slots.weights() == {"blue": 0, "green": 100} and slots.slot("blue") == {}

    # Rolling back to the first release is a release like another: it goes to blue.
    shifts.seen.clear()
    with slots.engine(AMI_V2) as engine:
        back = engine.rollback("checkout")
    assert (back.outcome, back.to_release) == ("promoted", first), back
    assert [after for _, after, _ in shifts.seen] == [{"blue": 100, "green": 0}]
    assert slots.slot("green") == {} and len(slots.instances_of("blue")) == 4
    assert {i["ImageId"] for i in slots.instances(slots.instances_of("blue"))} == {AMI_V1}


def test_a_first_release_that_fails_leaves_nothing_behind(slots: SlotWorld, health_server) -> None:
    server = health_server(lambda instance: 500)
    checks = (
        f"        - {{type: http, url: 'http://127.0.0.1:{server.port}/h/{{instance_id}}',"
        " failures: 1}"
    )
    slots.write(slot_spec("{type: blue-green}", checks=checks))
    with slots.engine(AMI_V1) as engine:
        result = engine.apply()
    checkout = result.fleet("checkout")
    assert checkout.outcome == "rolled_back" and checkout.rolled_back_to is None
    assert slots.weights() == {}
    assert slots.slot("blue") == {} and slots.slot("green") == {}
    assert slots.state_of(checkout.launched) <= {"shutting-down", "terminated"}
    templates = slots.client("ec2").describe_launch_templates()["LaunchTemplates"]
    assert templates == []


def test_rolling_back_refuses_to_send_traffic_to_an_unhealthy_previous_slot(
    slots: SlotWorld,
) -> None:
    first_release(slots)
    blue = slots.instances_of("blue")
    elbv2 = slots.client("elbv2")
    tg = elbv2.describe_target_groups(Names=["checkout-blue"])["TargetGroups"][0]["TargetGroupArn"]

    def break_blue(after: dict[str, int]) -> None:
        if after["green"] == 50:  # the old slot loses its targets, then the canary fails
            elbv2.deregister_targets(TargetGroupArn=tg, Targets=[{"Id": i} for i in blue])
            slots.set_alarm("ALARM")

    shifts = Shifts(slots)
    shifts.on_shift = break_blue
    slots.extra_plugins.append(shifts)
    with slots.engine(AMI_V2) as engine:
        result = engine.apply()
    checkout = result.fleet("checkout")
    assert checkout.outcome == "rollback_unfinished", checkout
    assert "did not finish" in (checkout.error or "")
    assert "slot blue is not healthy" in (checkout.error or "")
    # Nothing was moved to the broken slot and the slot still serving was not deleted.
    assert slots.weights() == {"blue": 50, "green": 50}
    assert len(slots.instances_of("green")) == 2
    # The rollout stays unfinished, rolling back: status says so, and once blue is healthy
    # again the next apply finishes the rollback (the alarm still fires: it blocks nothing).
    with slots.engine(AMI_V2) as engine:
        ro = {e["fleet"]: e for e in engine.status()}["checkout"]["rollout_in_progress"]
    assert (ro["id"], ro["phase"]) == (checkout.rollout, "rolling_back")
    assert "checkout-5xx" in ro["error"] and "slot blue is not healthy" in ro["rollback_error"]
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": i} for i in blue])
    shifts.on_shift = None
    with slots.engine(AMI_V2) as engine:
        again = engine.apply()
    done = again.fleet("checkout")
    assert (done.outcome, done.rollout) == ("rolled_back", checkout.rollout), done
    assert done.rolled_back_to == checkout.from_release
    assert slots.weights() == {"blue": 100, "green": 0}
    assert slots.slot("green") == {} and slots.instances_of("blue") == blue
    with slots.engine(AMI_V2) as engine:
        assert engine.state.unfinished_rollout("checkout") is None


def test_pruning_a_dropped_traffic_fleet_deletes_its_slot_groups(slots: SlotWorld) -> None:
    first_release(slots, "{type: blue-green}")
    blue = slots.instances_of("blue")
    text = slots.spec_path.read_text()
    slots.write(text[: text.index("fleets:")] + "fleets: {}\n")
    with slots.engine(AMI_V1) as engine:
        plan = engine.plan()
        assert plan.item("checkout").action == "destroy"
        result = engine.apply(plan, prune=True)
    assert result.fleet("checkout").outcome == "destroyed", result.to_dict()
    assert slots.slot("blue") == {} and slots.slot("green") == {}
    assert slots.state_of(blue) <= {"shutting-down", "terminated"}
    assert slots.client("ec2").describe_launch_templates()["LaunchTemplates"] == []


def test_a_failure_while_the_previous_slot_is_kept_warm_is_one_weight_change_back(
    slots: SlotWorld,
) -> None:
    first_release(slots, "{type: blue-green, keep_previous: 1h}")
    blue = slots.instances_of("blue")
    shifts = Shifts(slots)
    shifts.on_shift = lambda after: after["green"] == 100 and slots.set_alarm("ALARM")
    slots.extra_plugins.append(shifts)
    slots.events.clear()
    with slots.engine(AMI_V2) as engine:
        result = engine.apply()
    checkout = result.fleet("checkout")
    assert checkout.outcome == "rolled_back", checkout
    assert [after for _, after, _ in shifts.seen] == [
        {"blue": 0, "green": 100},
        {"blue": 100, "green": 0},
    ]
    # the warm slot took the traffic back as it was: no instance launched or replaced there
    assert slots.instances_of("blue") == blue and slots.state_of(blue) == {"running"}
    assert slots.slot("green") == {}
    launches = [e for e in slots.of_kind("step.started") if e.data["step"]["kind"] == "provision"]
    assert len(launches) == 1


def test_rolling_back_by_hand_is_not_blocked_by_the_alarm_of_the_bad_release(
    slots: SlotWorld,
) -> None:
    first = first_release(slots, "{type: blue-green}")
    with slots.engine(AMI_V2) as engine:
        assert engine.apply().ok
    slots.set_alarm("ALARM")  # the new release misbehaves in production
    slots.events.clear()
    with slots.engine(AMI_V2) as engine:
        back = engine.rollback("checkout")
    assert (back.outcome, back.to_release) == ("promoted", first), back
    polls = [e.data["checks"] for e in slots.of_kind("gate.poll")]
    assert polls and all(set(p) == {"ec2", "elb"} for p in polls)
    assert slots.weights() == {"blue": 100, "green": 0}
