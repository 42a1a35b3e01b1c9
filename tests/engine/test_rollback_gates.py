"""A rollback is never blocked by the signal that failed the release (issue 13, item 1).

The issue's scenario: a rolling fleet of 6 in batches of 2 with a pause between batches, gated
on EC2 status, target health and a CloudWatch alarm. The alarm goes to ALARM after batch 1
passed, and stays there. The rollback gates only the instances it launches, on their own
health, and restores the fleet; a rollback that cannot finish stays unfinished and visible, and
the next apply finishes it (never the roll forward).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from immutable_sdk.clock import VirtualClock
from immutable_sdk.plugin import hookimpl
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec
from immutable_sdk.state.sqlite import SqliteStateStore

from .conftest import AMI_V1, AMI_V2, World, fleet_spec
from .durable import Crash, assert_converged, crash_at_call, fleet_instances
from .test_cli_durable import STATE, cli
from .test_faults import error_response

DESIRED = 6
CHECKS = (
    "        - {type: ec2}\n"
    "        - {type: elb}\n"
    "        - {type: cloudwatch-alarm, alarms: [shop-5xx]}"
)
STRATEGY = "{type: rolling, batch_size: 2, min_healthy: 100%, pause: 1m}"

pytestmark = pytest.mark.slow


class AlarmAfterFirstBatch:
    """Sets shop-5xx to ALARM when the rollout's first pause starts (batch 1 passed its gate
    and its old instances are retired), as a release that breaks under load would."""

    def __init__(self, world: World) -> None:
        self.cw = world.client("cloudwatch")
        self.armed = False
        self.fired = False

    @hookimpl
    def immutable_sdk_step_started(self, rollout: Any, step: Any) -> None:
        if self.armed and not self.fired and step.kind == "pause":
            self.fired = True
            self.cw.set_alarm_state(
                AlarmName="shop-5xx", StateValue="ALARM", StateReason="5xx above 1%"
            )


def alarm_state(world: World) -> str:
    alarms = world.client("cloudwatch").describe_alarms(AlarmNames=["shop-5xx"])["MetricAlarms"]
    return str(alarms[0]["StateValue"])


def deployed(world: World, plugin: AlarmAfterFirstBatch) -> tuple[str, set[str]]:
    """Release 1 on 6 instances; returns it and its instances."""
    world.write(fleet_spec(desired=DESIRED, strategy=STRATEGY, checks=CHECKS))
    world.extra_plugins.append(plugin)
    with world.engine(AMI_V1) as engine:
        first = engine.apply()
    assert first.ok, first.to_dict()
    world.events.clear()
    plugin.armed = True
    return first.fleet("web").to_release or "", {m["InstanceId"] for m in world.members()}


def rollback_polls(world: World) -> list[dict[str, Any]]:
    """The checks of every gate poll after the rollback started."""
    kinds = [e.kind for e in world.events]
    start = kinds.index("rollback.started")
    return [e.data["checks"] for e in world.events[start:] if e.kind == "gate.poll"]


def test_an_alarm_that_failed_the_release_does_not_block_the_rollback(world: World) -> None:
    plugin = AlarmAfterFirstBatch(world)
    v1, _ = deployed(world, plugin)
    with world.engine(AMI_V2) as engine:
        result = engine.apply()
    web = result.fleet("web")
    assert not result.ok
    assert (web.outcome, web.rolled_back_to) == ("rolled_back", v1), web.to_dict()
    assert "shop-5xx" in (web.error or "")
    assert plugin.fired and alarm_state(world) == "ALARM"  # still firing: it blocked nothing
    # The rollback gated the 2 instances it launched, on their own health only.
    polls = rollback_polls(world)
    assert polls and all(set(p) == {"ec2", "elb"} for p in polls)
    started = next(e for e in world.events if e.kind == "rollback.started")
    assert started.data["checks"] == ["ec2", "elb"]
    # 6 instances of release 1, nothing of release 2 anywhere, bounds and processes restored,
    # release 2's launch template version gone.
    assert_converged(world, v1, AMI_V1, desired=DESIRED, releases=[v1])
    assert world.running(AMI_V2) == []
    with SqliteStateStore(world.tmp / "state.db", "shop") as state:
        record = state.get_rollout(web.rollout or "")
        assert state.unfinished_rollout("web") is None
    assert record is not None and record.outcome == "rolled_back"


class StopRelaunched:
    """During the rollback's gate, stops the release 1 instances the rollback launched (an
    instance-health failure of the rollback itself), once."""

    def __init__(self, world: World, original: set[str]) -> None:
        self.world, self.original = world, original
        self.rolling_back = False
        self.stopped: list[str] = []

    @hookimpl
    def immutable_sdk_rollback_started(self, rollout: Any, reason: str) -> None:
        self.rolling_back = True

    @hookimpl
    def immutable_sdk_step_started(self, rollout: Any, step: Any) -> None:
        if self.rolling_back and not self.stopped and step.kind == "gate":
            fresh = [
                m["InstanceId"]
                for m in self.world.members()
                if m["ImageId"] == AMI_V1 and m["InstanceId"] not in self.original
            ]
            assert fresh, "the rollback launched nothing to gate"
            self.world.client("ec2").stop_instances(InstanceIds=fresh)
            self.stopped = fresh


def test_a_rollback_that_cannot_finish_stays_visible_and_apply_finishes_it(
    world: World,
) -> None:
    plugin = AlarmAfterFirstBatch(world)
    v1, original = deployed(world, plugin)
    stopper = StopRelaunched(world, original)
    world.extra_plugins.append(stopper)
    with world.engine(AMI_V2) as engine:
        result = engine.apply()
    world.extra_plugins.remove(stopper)
    web = result.fleet("web")
    assert stopper.stopped
    assert web.outcome == "rollback_unfinished" and not result.ok, web.to_dict()
    assert "shop-5xx" in (web.error or "") and "did not finish" in (web.error or "")
    assert "run apply again" in (web.error or "")

    # Unfinished, rolling back, with why: the state and status say so.
    with SqliteStateStore(world.tmp / "state.db", "shop") as state:
        record = state.unfinished_rollout("web")
        assert state.get_lock("web") is None  # released: the next apply needs no wait
    assert record is not None and record.id == web.rollout
    assert (record.outcome, record.phase) == (None, "rolling_back")
    assert "shop-5xx" in (record.error or "")
    assert "ec2" in str(record.data.get("rollback_error"))
    with world.engine(AMI_V2) as engine:
        entry = {e["fleet"]: e for e in engine.status()}["web"]
        reasons = engine.plan().item("web").reasons
    ro = entry["rollout_in_progress"]
    assert (ro["id"], ro["phase"], ro["resumable"]) == (record.id, "rolling_back", True)
    assert "shop-5xx" in ro["error"] and "ec2" in ro["rollback_error"]
    assert set(entry["suspended"]) == {"AZRebalance", "AlarmNotification", "ScheduledActions"}
    assert any(r.startswith(f"finish rolling back unfinished rollout {record.id}") for r in reasons)

    # The next apply (the spec still wants release 2, the alarm still fires) finishes the
    # rollback: it never rolls forward again.
    assert alarm_state(world) == "ALARM"
    world.events.clear()
    with world.engine(AMI_V2) as engine:
        again = engine.apply()
    web = again.fleet("web")
    assert (web.outcome, web.rollout, web.rolled_back_to) == ("rolled_back", record.id, v1)
    assert not again.ok  # the release failed: exit 1
    assert not [e for e in world.events if e.kind == "rollout.started"]
    assert set(stopper.stopped) <= set(web.retired)  # the instances whose gate failed went
    assert_converged(world, v1, AMI_V1, desired=DESIRED, releases=[v1])
    assert world.running(AMI_V2) == []
    assert {i["InstanceId"] for i in fleet_instances(world)} == {
        m["InstanceId"] for m in world.members()
    }
    with SqliteStateStore(world.tmp / "state.db", "shop") as state:
        assert state.unfinished_rollout("web") is None
        done = state.get_rollout(record.id)
    assert done is not None and done.outcome == "rolled_back"


def test_the_command_line_shows_an_unfinished_rollback_and_apply_finishes_it(
    world: World,
) -> None:
    # The CLI runs on the real clock; the engines of the test run an hour behind it.
    world.clock = VirtualClock(start=time.time() - 3600)
    plugin = AlarmAfterFirstBatch(world)
    world.write(fleet_spec(desired=DESIRED, strategy=STRATEGY, checks=CHECKS) + STATE)
    spec = str(world.spec_path)
    Sandbox.attach(world.url).seed(load_spec([world.spec_path]))
    world.extra_plugins.append(plugin)
    with world.engine(AMI_V1) as engine:
        v1 = engine.apply().fleet("web").to_release or ""
    original = {m["InstanceId"] for m in world.members()}
    plugin.armed = True
    world.extra_plugins.append(StopRelaunched(world, original))
    with world.engine(AMI_V2) as engine:
        failed = engine.apply().fleet("web")
    world.extra_plugins.clear()
    assert failed.outcome == "rollback_unfinished", failed.to_dict()

    text = cli(world, "status", "-f", spec)
    assert text.exit_code == 0, text.output
    line = " ".join(text.stdout.split())
    assert f"{failed.rollout} (rolling_back)" in line
    assert f"rolling back to {v1} after: health gate failed: cloudwatch-alarm" in line
    assert "the rollback stopped: health gate failed: ec2" in line
    assert "unfinished: apply finishes the rollback" in line
    assert "suspended: AZRebalance, AlarmNotification, ScheduledActions" in line
    entry = json.loads(cli(world, "status", "-f", spec, "-o", "json").stdout)["fleets"][0]
    assert entry["rollout_in_progress"]["phase"] == "rolling_back"
    plan = json.loads(cli(world, "plan", "-f", spec, "-o", "json").stdout)
    assert plan["items"][0]["reasons"][0].startswith(
        f"finish rolling back unfinished rollout {failed.rollout} to {v1}"
    )

    applied = cli(world, "apply", "-f", spec, "--yes", "-o", "json")
    assert applied.exit_code == 1, applied.output  # the release failed: exit 1
    (web,) = json.loads(applied.stdout)["fleets"]
    assert (web["outcome"], web["rollout"], web["rolled_back_to"]) == (
        "rolled_back",
        failed.rollout,
        v1,
    )
    assert_converged(world, v1, AMI_V1, desired=DESIRED, releases=[v1])
    again = cli(world, "status", "-f", spec, "-o", "json")
    assert json.loads(again.stdout)["fleets"][0]["rollout_in_progress"] is None


def test_rolling_back_by_hand_is_not_blocked_by_the_alarm_of_the_bad_release(
    world: World,
) -> None:
    world.write(fleet_spec(desired=2, checks=CHECKS))
    with world.engine(AMI_V1) as engine:
        v1 = engine.apply().fleet("web").to_release
    with world.engine(AMI_V2) as engine:
        assert engine.apply().ok
    world.client("cloudwatch").set_alarm_state(
        AlarmName="shop-5xx", StateValue="ALARM", StateReason="5xx above 1%"
    )
    world.events.clear()
    with world.engine(AMI_V2) as engine:
        back = engine.rollback("web")
    assert (back.outcome, back.to_release) == ("promoted", v1), back
    polls = [e.data["checks"] for e in world.of_kind("gate.poll")]
    assert polls and all(set(p) == {"ec2", "elb"} for p in polls)
    assert {m["ImageId"] for m in world.members()} == {AMI_V1}


def test_an_aws_refusal_during_the_rollback_leaves_it_unfinished_until_apply(
    world: World,
) -> None:
    world.write(fleet_spec(desired=2, checks=CHECKS))
    with world.engine(AMI_V1) as engine:
        v1 = engine.apply().fleet("web").to_release or ""
    world.client("cloudwatch").set_alarm_state(
        AlarmName="shop-5xx", StateValue="ALARM", StateReason="5xx above 1%"
    )
    refused: list[str] = []
    rolling_back: list[bool] = []

    class Watch:
        @hookimpl
        def immutable_sdk_rollback_started(self, rollout: Any, reason: str) -> None:
            rolling_back.append(True)

    def refuse_detach(request: Any, event_name: str = "", **_: Any) -> Any:
        if rolling_back and event_name.endswith(".DetachInstances"):
            refused.append(event_name)
            return error_response(request.url, 403, "AccessDenied", "autoscaling")
        return None

    world.extra_plugins.append(Watch())
    with world.engine(AMI_V2) as engine:
        engine.session.events.register("before-send.*.*", refuse_detach)
        result = engine.apply()
    world.extra_plugins.clear()
    web = result.fleet("web")
    assert refused and web.outcome == "rollback_unfinished", web.to_dict()
    assert "AccessDenied" in (web.error or "")
    with SqliteStateStore(world.tmp / "state.db", "shop") as state:
        record = state.unfinished_rollout("web")
    assert record is not None and record.phase == "rolling_back"
    assert "AccessDenied" in str(record.data.get("rollback_error"))

    with world.engine(AMI_V2) as engine:  # AWS lets it through again; the alarm still fires
        again = engine.apply()
    done = again.fleet("web")
    assert (done.outcome, done.rollout, done.rolled_back_to) == ("rolled_back", record.id, v1)
    assert_converged(world, v1, AMI_V1, desired=2, releases=[v1])


def test_instances_a_killed_rollback_launch_left_are_never_trusted_ungated(
    world: World,
) -> None:
    plugin = AlarmAfterFirstBatch(world)
    world.write(fleet_spec(desired=4, strategy=STRATEGY, checks=CHECKS))
    world.extra_plugins.append(plugin)
    with world.engine(AMI_V1) as engine:
        v1 = engine.apply().fleet("web").to_release or ""
    original = {m["InstanceId"] for m in world.members()}
    plugin.armed = True
    # Mutating calls: version, suspend, bounds, batch 1 (launch, deregister, detach,
    # terminate), batch 2's launch (its gate fails), the rollback's version switch, then its
    # launch of release 1: the process dies right after AWS took that one.
    engine = world.engine(AMI_V2)
    crash_at_call(engine, 9, after=True)
    with pytest.raises(Crash):
        engine.apply()
    engine.close()
    world.extra_plugins.clear()
    left = {
        m["InstanceId"]
        for m in world.members()
        if m["ImageId"] == AMI_V1 and m["InstanceId"] not in original
    }
    assert len(left) == 2, "the crash must come right after the rollback's launch"
    with SqliteStateStore(world.tmp / "state.db", "shop") as state:
        record = state.unfinished_rollout("web")
    assert record is not None and record.phase == "rolling_back"
    world.clock.advance(120)  # the dead process's lease runs out

    world.events.clear()
    with world.engine(AMI_V2) as engine:
        result = engine.apply()
    web = result.fleet("web")
    assert (web.outcome, web.rollout, web.rolled_back_to) == ("rolled_back", record.id, v1)
    # They never passed the rollback's gate: retired, and fresh ones launched and gated.
    assert left <= set(web.retired)
    gated = {i for e in world.of_kind("step.finished") for i in e.data.get("gated", ()) if e.data}
    assert gated and not gated & left
    assert_converged(world, v1, AMI_V1, desired=4, releases=[v1])
