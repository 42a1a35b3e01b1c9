"""Quarantined releases and rollback pins: the next apply respects them (issue 18).

A release whose rollout failed its gates (here: a CloudWatch alarm in ALARM) is quarantined:
``plan`` shows the fleet ``blocked`` with the rollout and the check that failed, ``apply``
leaves the fleet alone (other fleets go on) and fails naming ``--retry-failed``, and only a
new desired release or ``--retry-failed`` rolls it out. ``rollback`` pins the fleet to the
release it returned to until ``unpin`` or a new desired release.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.cli.output_schema import check_output

from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec
from immutable_sdk.state.sqlite import SqliteStateStore

from .conftest import AMI_V1, AMI_V2, World
from .test_cli_durable import STATE, cli

pytestmark = pytest.mark.slow

SPEC = """
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web:
    builder: ami
    id: ${WEB_AMI}
fleets:
  web:
    image: web
    instance_type: ${WEB_TYPE}
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    user_data: boot.sh
    capacity: {min: 2, desired: 2, max: 4}
    load_balancer: {target_groups: [shop-web]}
    strategy: {type: rolling, batch_size: 1, min_healthy: 100%}
    health:
      timeout: 5m
      interval: 5s
      checks:
        - {type: ec2}
        - {type: elb}
        - {type: cloudwatch-alarm, alarms: [shop-5xx]}
    rollback: {automatic: true}
  api:
    image: web
    instance_type: ${API_TYPE}
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {min: 1, desired: 1, max: 2}
    strategy: {type: rolling, batch_size: 1}
    health: {timeout: 5m, interval: 5s, checks: [{type: ec2}]}
"""


def setup(world: World, state: str = "") -> str:
    world.monkeypatch.setenv("WEB_TYPE", "t3.micro")
    world.monkeypatch.setenv("API_TYPE", "t3.micro")
    path = world.write(SPEC + state, AMI_V1)
    return str(path)


def set_alarm(world: World, value: str) -> None:
    world.client("cloudwatch").set_alarm_state(
        AlarmName="shop-5xx", StateValue=value, StateReason="test"
    )


def rollouts(world: World, fleet: str = "web") -> list[Any]:
    with SqliteStateStore(world.tmp / "state.db", "shop") as state:
        return state.rollouts(fleet)


def failed_release(world: World) -> tuple[str, str, str]:
    """Release 1 everywhere, then release 2 failed on web by the alarm: (v1, v2, rollout)."""
    with world.engine(AMI_V1) as engine:
        first = engine.apply()
    assert first.ok, first.to_dict()
    set_alarm(world, "ALARM")
    with world.engine(AMI_V2) as engine:
        second = engine.apply()
    web = second.fleet("web")
    assert web.outcome == "rolled_back", web.to_dict()
    assert second.fleet("api").outcome == "promoted"  # no alarm check: it went on
    return first.fleet("web").to_release or "", web.to_release or "", web.rollout or ""


def test_a_release_that_failed_its_gates_is_blocked_until_retry_failed(world: World) -> None:
    setup(world)
    v1, v2, failed = failed_release(world)
    members = {m["InstanceId"] for m in world.members()}

    with world.engine(AMI_V2) as engine:
        plan = engine.plan()
        web = plan.item("web")
        assert web.action == "blocked" and not plan.changes, web
        assert (web.current_release, web.release) == (v1, v2)
        assert failed in web.reasons[0] and "cloudwatch-alarm" in web.reasons[0]
        assert "--retry-failed" in web.reasons[0]
        assert web.hold is not None
        assert (web.hold["rollout"], web.hold["checks"]) == (failed, ["cloudwatch-alarm"])
        status = {e["fleet"]: e for e in engine.status()}
        assert [(h["kind"], h["release"]) for h in status["web"]["holds"]] == [("quarantine", v2)]
        assert status["api"]["holds"] == []

        # Another fleet's change goes on; the blocked fleet is left exactly as it is.
        world.monkeypatch.setenv("API_TYPE", "t3.small")
    with world.engine(AMI_V2) as engine:
        result = engine.apply()
    web_result = result.fleet("web")
    assert (web_result.outcome, web_result.rollout) == ("quarantined", failed)
    assert "--retry-failed" in (web_result.error or "") and not result.ok
    assert result.fleet("api").outcome == "promoted"
    assert {m["InstanceId"] for m in world.members()} == members
    assert rollouts(world)[0].id == failed  # no new rollout of web
    assert set(world.running(AMI_V2)) == set(_api_ids(world))  # only api runs release 2's AMI

    # A new desired release (anything that changes what web would run) is not blocked.
    world.monkeypatch.setenv("WEB_TYPE", "t3.small")
    with world.engine(AMI_V2) as engine:
        moved = engine.plan().item("web")
    assert moved.action == "replace" and moved.release not in (v1, v2), moved
    world.monkeypatch.setenv("WEB_TYPE", "t3.micro")

    # --retry-failed tries again: with the alarm cleared it goes through, quarantine lifted.
    set_alarm(world, "OK")
    with world.engine(AMI_V2) as engine:
        retried = engine.apply(retry_failed=True)
        assert retried.fleet("web").outcome == "promoted", retried.to_dict()
        assert retried.fleet("web").to_release == v2
        assert engine.state.holds("web") == []
        assert engine.plan().item("web").action == "noop"


def _api_ids(world: World) -> list[str]:
    return [i["InstanceId"] for i in world.group("shop-api").get("Instances", [])]


def test_a_release_that_fails_again_on_retry_stays_quarantined(world: World) -> None:
    setup(world)
    _, v2, first_failure = failed_release(world)
    with world.engine(AMI_V2) as engine:
        again = engine.apply(retry_failed=True)
        web = again.fleet("web")
        assert web.outcome == "rolled_back" and web.rollout != first_failure, web.to_dict()
        holds = engine.state.holds("web")
        assert [(h.release, h.rollout) for h in holds] == [(v2, web.rollout)]
        assert engine.plan().item("web").action == "blocked"


def test_the_command_line_blocks_the_cron_apply_and_retries_on_request(world: World) -> None:
    spec = cli_spec(world)
    _, v2, failed = failed_release(world)
    before = len(rollouts(world))

    plan = cli(world, "plan", "-f", spec)
    assert plan.exit_code == 0, plan.output
    assert "blocked" in plan.stdout and failed in plan.stdout
    planned = check_output("plan", cli(world, "plan", "-f", spec, "-o", "json").stdout)
    items = {i["fleet"]: i for i in planned["items"]}
    assert items["web"]["action"] == "blocked" and items["web"]["hold"]["rollout"] == failed
    detailed = cli(world, "plan", "-f", spec, "--detailed-exitcode")
    assert detailed.exit_code == 0  # nothing apply would change

    cron = cli(world, "apply", "-f", spec, "--yes", "--recycle")
    assert cron.exit_code == 1, cron.output
    assert "quarantined" in cron.stdout and "--retry-failed" in cron.stdout
    assert len(rollouts(world)) == before
    assert set(world.running(AMI_V2)) == set(_api_ids(world))

    status = check_output("status", cli(world, "status", "-f", spec, "-o", "json").stdout)
    web = next(e for e in status["fleets"] if e["fleet"] == "web")
    assert web["holds"][0]["kind"] == "quarantine" and web["holds"][0]["rollout"] == failed
    assert "quarantined" in cli(world, "status", "-f", spec).stdout

    set_alarm(world, "OK")
    retried = cli(world, "apply", "-f", spec, "--yes", "--retry-failed", "-o", "json")
    assert retried.exit_code == 0, retried.output
    out = {f["fleet"]: f for f in check_output("apply", retried.stdout)["fleets"]}
    assert (out["web"]["outcome"], out["web"]["to_release"]) == ("promoted", v2)


def test_a_saved_plan_of_a_blocked_fleet_goes_stale_when_the_quarantine_is_lifted(
    world: World,
) -> None:
    spec = cli_spec(world)
    _, v2, failed = failed_release(world)
    saved = world.tmp / "blocked.plan"
    made = cli(world, "plan", "-f", spec, "--out", str(saved))
    assert made.exit_code == 0, made.output
    with SqliteStateStore(world.tmp / "state.db", "shop") as state:
        assert [h.rollout for h in state.drop_holds("web", "quarantine", v2)] == [failed]
    # Reviewed as "blocked": applying it now would roll the release out unreviewed.
    stale = cli(world, "apply", str(saved))
    assert stale.exit_code == 2, stale.output
    assert "stale" in stale.stderr and "hold 'quarantine' -> None" in stale.stderr
    assert rollouts(world)[0].id == failed


def cli_spec(world: World) -> str:
    """The spec on disk for the command line, the state in state.db beside it; the test's
    engines run an hour behind the real clock (their leases have expired for the CLI)."""
    import time

    from immutable_sdk.clock import VirtualClock

    world.clock = VirtualClock(start=time.time() - 3600)
    path = setup(world, STATE)
    Sandbox.attach(world.url).seed(load_spec([path]))
    return path


# --- pins ---------------------------------------------------------------------------------


def rolled_back(world: World) -> tuple[str, str]:
    """Release 1, then 2 promoted on web, then ``rollback`` to 1: (v1, v2)."""
    with world.engine(AMI_V1) as engine:
        v1 = engine.apply().fleet("web").to_release or ""
    with world.engine(AMI_V2) as engine:
        v2 = engine.apply().fleet("web").to_release or ""
        back = engine.rollback("web")
    assert (back.outcome, back.to_release) == ("promoted", v1), back.to_dict()
    return v1, v2


def test_a_rollback_pins_the_fleet_until_unpin(world: World) -> None:
    setup(world)
    v1, v2 = rolled_back(world)
    members = {m["InstanceId"] for m in world.members()}
    with world.engine(AMI_V2) as engine:
        item = engine.plan().item("web")
        assert item.action == "pinned" and item.current_release == v1, item
        assert "unpin --fleet web" in item.reasons[0] and v2 in item.reasons[0]
        count = len(engine.state.rollouts("web"))
        result = engine.apply()
        assert result.ok and result.fleet("web").outcome == "pinned", result.to_dict()
        assert len(engine.state.rollouts("web")) == count
        assert {m["InstanceId"] for m in world.members()} == members
        status = {e["fleet"]: e for e in engine.status()}["web"]
        assert status["holds"][0]["kind"] == "pin"
        assert (status["holds"][0]["release"], status["holds"][0]["from_release"]) == (v1, v2)

        assert [h["release"] for h in engine.unpin("web")] == [v1]
        assert engine.plan().item("web").action == "replace"
        assert engine.apply().fleet("web").outcome == "promoted"
    assert {m["ImageId"] for m in world.members()} == {AMI_V2}


def test_a_pin_ends_when_the_spec_wants_another_release(world: World) -> None:
    setup(world)
    v1, v2 = rolled_back(world)
    world.monkeypatch.setenv("WEB_TYPE", "t3.small")
    with world.engine(AMI_V2) as engine:
        item = engine.plan().item("web")
        assert item.action == "replace" and item.release not in (v1, v2), item
        assert any("the pin on" in r for r in item.reasons)
        result = engine.apply()
        assert result.fleet("web").outcome == "promoted", result.to_dict()
        assert engine.state.holds("web") == []


def test_rollback_and_unpin_on_the_command_line(world: World) -> None:
    spec = cli_spec(world)
    with world.engine(AMI_V1) as engine:
        v1 = engine.apply().fleet("web").to_release or ""
    with world.engine(AMI_V2) as engine:
        v2 = engine.apply().fleet("web").to_release or ""
    world.monkeypatch.setenv("WEB_AMI", AMI_V2)
    back = cli(world, "rollback", "--fleet", "web", "-f", spec)
    assert back.exit_code == 0, back.output
    assert f"pinned to {v1}" in back.stdout
    applied = cli(world, "apply", "-f", spec, "--yes", "-o", "json")
    assert applied.exit_code == 0, applied.output
    web = next(f for f in check_output("apply", applied.stdout)["fleets"] if f["fleet"] == "web")
    assert web["outcome"] == "pinned"
    assert {m["ImageId"] for m in world.members()} == {AMI_V1}
    assert "pinned" in cli(world, "plan", "-f", spec).stdout

    unpinned = cli(world, "unpin", "--fleet", "web", "-f", spec)
    assert unpinned.exit_code == 0, unpinned.output
    assert f"unpinned from {v1} (rolled back from {v2})" in unpinned.stdout
    again = cli(world, "unpin", "--fleet", "web", "-f", spec)
    assert again.exit_code == 2 and "is not pinned" in again.stderr
