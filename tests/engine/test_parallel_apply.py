"""Several fleets in one apply: in parallel, in depends_on order, wave by wave, on the emulator."""

from __future__ import annotations

from immutable_sdk.plugin import hookimpl

from .conftest import AMI_V1, AMI_V2, World

HEAD = """
apiVersion: immutable-sdk/v1
name: {project}
region: us-east-1
images:
  web:
    builder: ami
    id: ${{WEB_AMI}}
fleets:
"""
FLEET = """
  {name}:
    image: web
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {{min: 2, desired: 2, max: 4}}
    strategy: {{type: rolling, batch_size: 1, bake: 10m}}
    health:
      timeout: 5m
      interval: 10s
      checks:
{checks}
    depends_on: {deps}
"""
EC2 = "        - {type: ec2}"


def spec(project: str = "shop", waves: str = "", **fleets: tuple[list[str], str]) -> str:
    text = HEAD.format(project=project)
    for name, (deps, checks) in fleets.items():
        text += FLEET.format(name=name, deps="[" + ", ".join(deps) + "]", checks=checks)
    return text + waves


def test_independent_fleets_take_about_the_time_of_one(world: World) -> None:
    four = {f"f{i}": ([], EC2) for i in range(4)}
    world.write(spec("one", f0=([], EC2)))
    with world.engine(AMI_V1) as engine:
        one = engine.apply()
    world.write(spec("par", **four))
    with world.engine(AMI_V1) as engine:
        parallel = engine.apply(parallelism=4)
    world.write(spec("seq", **four))
    with world.engine(AMI_V1) as engine:
        sequential = engine.apply(parallelism=1)
    assert one.ok and parallel.ok and sequential.ok
    assert one.duration >= 600  # launch, gate and a 10-minute bake on the virtual clock
    assert parallel.duration <= one.duration * 1.05, (parallel.duration, one.duration)
    assert sequential.duration >= 4 * one.duration * 0.95
    assert [f.fleet for f in parallel.fleets] == ["f0", "f1", "f2", "f3"]  # plan order
    # every event of a rollout names its fleet, so the live view can group them
    rollout_events = [e for e in world.events if e.kind.startswith(("rollout.", "step."))]
    assert rollout_events and all(e.fleet for e in rollout_events)


def test_a_failing_fleet_blocks_its_dependants_and_nothing_else(
    world: World, health_server
) -> None:
    server = health_server(lambda instance: 500)
    bad = (
        f"        - {{type: http, url: 'http://127.0.0.1:{server.port}/h/{{instance_id}}',"
        " failures: 1}"
    )
    world.write(
        spec(
            db=([], bad),
            api=(["db"], EC2),
            web=(["api"], EC2),
            batch=([], EC2),
        )
    )
    with world.engine(AMI_V1) as engine:
        result = engine.apply()
    outcomes = {f.fleet: f.outcome for f in result.fleets}
    assert outcomes == {
        "db": "rolled_back",
        "api": "blocked",
        "web": "blocked",
        "batch": "promoted",
    }
    assert not result.ok
    assert "fleet 'db' that it depends on failed" in (result.fleet("api").error or "")
    assert result.fleet("api").action == "create"  # a blocked fleet keeps its planned action
    started = {e.fleet for e in world.of_kind("rollout.started")}
    assert started == {"db", "batch"}
    assert world.group("shop-api") == {} and world.group("shop-batch") != {}


def test_fail_fast_stops_every_fleet_not_yet_started(world: World, health_server) -> None:
    server = health_server(lambda instance: 500)
    bad = f"        - {{type: http, url: 'http://127.0.0.1:{server.port}/h/x', failures: 1}}"
    world.write(spec(db=([], bad), api=([], EC2), web=([], EC2)))
    with world.engine(AMI_V1) as engine:
        result = engine.apply(parallelism=1, fail_fast=True)
    outcomes = {f.fleet: f.outcome for f in result.fleets}
    assert outcomes == {"db": "rolled_back", "api": "blocked", "web": "blocked"}
    assert "--fail-fast" in (result.fleet("web").error or "")


def test_waves_roll_out_in_order_and_a_failing_bake_rolls_the_wave_back(world: World) -> None:
    alarm = "        - {type: ec2}\n        - {type: cloudwatch-alarm, alarms: [shop-5xx]}"
    waves = (
        "waves:\n"
        "  - {name: one-box, fleets: [canary], regions: [us-east-1], bake: 30m}\n"
        "  - {name: rest, fleets: ['*']}\n"
    )
    world.write(spec(waves=waves, canary=([], alarm), web=([], EC2), api=([], EC2)))
    with world.engine(AMI_V1) as engine:
        plan = engine.plan()
        assert [(i.fleet, i.wave) for i in plan.items] == [
            ("canary", "one-box"),
            ("web", "rest"),
            ("api", "rest"),
        ]
        assert [w["name"] for w in plan.to_dict()["waves"]] == ["one-box", "rest"]
        first = engine.apply(plan)
    assert first.ok, first.to_dict()
    started = {e.fleet: e.at for e in world.of_kind("rollout.started")}
    bakes = world.of_kind("wave.bake")
    assert [(e.fleet, e.data["wave"]) for e in bakes] == [("canary", "one-box")]
    # the rest waits for the canary's rollout and its 30-minute wave bake
    assert started["web"] >= bakes[0].at + 1800 and started["api"] >= bakes[0].at + 1800

    cw = world.client("cloudwatch")

    old_release = first.fleet("canary").to_release

    class AlarmAfterCanary:
        """5xx once the canary runs the new release; back to OK when it rolls back."""

        @hookimpl
        def immutable_sdk_rollout_finished(self, rollout, outcome) -> None:  # type: ignore[no-untyped-def]
            if rollout.fleet == "canary" and outcome == "promoted":
                cw.set_alarm_state(AlarmName="shop-5xx", StateValue="ALARM", StateReason="5xx")

        @hookimpl
        def immutable_sdk_rollout_started(self, rollout) -> None:  # type: ignore[no-untyped-def]
            if rollout.fleet == "canary" and rollout.to_release == old_release:
                cw.set_alarm_state(AlarmName="shop-5xx", StateValue="OK", StateReason="back")

    world.extra_plugins.append(AlarmAfterCanary())
    world.events.clear()
    with world.engine(AMI_V2) as engine:
        second = engine.apply()
    canary = second.fleet("canary")
    assert canary.outcome == "rolled_back", canary.error
    assert "wave 'one-box' bake" in (canary.error or "")
    assert canary.rolled_back_to == old_release
    assert {second.fleet(f).outcome for f in ("web", "api")} == {"blocked"}
    assert "wave 'one-box' failed" in (second.fleet("web").error or "")
    assert world.running(AMI_V2) == []  # the canary is back on the old image

    # The bake judged the release: it is quarantined (not pinned), so the next apply leaves
    # the canary on the old release and the later wave waits for it, until --retry-failed.
    with world.engine(AMI_V2) as engine:
        item = engine.plan().item("canary")
        assert item.action == "blocked" and item.hold is not None, item
        assert item.hold["kind"] == "quarantine" and item.hold["rollout"] == canary.rollout
        assert item.hold["checks"] == ["wave-bake", "cloudwatch-alarm"]
        assert [h.kind for h in engine.state.holds("canary")] == ["quarantine"]
        again = engine.apply()
    assert again.fleet("canary").outcome == "quarantined"
    assert {again.fleet(f).outcome for f in ("web", "api")} == {"blocked"}
    assert world.running(AMI_V2) == []
