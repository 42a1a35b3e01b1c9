"""Unfinished rollouts: abort, a spec changed meanwhile, a crashed create or rollback, stop
requests, locks lost and held (in process, virtual clock)."""

from __future__ import annotations

from typing import Any

import pytest

from immutable_sdk.aws.fence import mutating
from immutable_sdk.errors import Interrupted
from immutable_sdk.plugin import hookimpl
from immutable_sdk.state.sqlite import SqliteStateStore

from .conftest import AMI_V1, AMI_V2, World, fleet_spec
from .durable import (
    Crash,
    CrashAtBoundary,
    assert_converged,
    assert_state_settled,
    fleet_instances,
    min_healthy,
    release_versions,
)
from .test_resume import DESIRED, LEASE, crashed_rollout, deployed, outcomes

pytestmark = pytest.mark.slow


def state(world: World) -> SqliteStateStore:
    return SqliteStateStore(world.tmp / "state.db", "shop")


@pytest.mark.parametrize(
    "crash",
    [
        pytest.param({"boundary": ("started", 1)}, id="new-instances-not-gated"),
        pytest.param({"call": (5, True)}, id="detached-not-terminated"),
        pytest.param({"call": (1, True)}, id="processes-suspended"),
    ],
)
def test_abort_unfinished_rolls_back_to_the_release_it_started_from(
    world: World, crash: dict[str, Any]
) -> None:
    v1 = deployed(world)
    boundary = CrashAtBoundary(*crash["boundary"]) if "boundary" in crash else None
    record = crashed_rollout(world, boundary, call=crash.get("call"))
    with world.engine(AMI_V2) as engine:
        result = engine.apply(abort_unfinished=True)
    web = result.fleet("web")
    assert result.ok, result.to_dict()
    assert (web.outcome, web.rollout, web.rolled_back_to) == ("aborted", record.id, v1)
    assert_converged(world, v1, AMI_V1, desired=DESIRED, releases=[v1])  # v2's version gone
    assert_state_settled(world)
    assert min_healthy(world) >= DESIRED
    assert outcomes(world) == ["promoted", "rolled_back"]
    with state(world) as s:
        notes = [e.data.get("note") for e in s.journal(record.id) if e.status == "note"]
    assert "aborted" in notes and "reconciled" in notes


def test_engine_abort_unfinished_waits_for_nobody_and_refuses_a_running_rollout(
    world: World,
) -> None:
    v1 = deployed(world)
    crashed_rollout(world, call=(3, True))
    with state(world) as s:
        s.acquire_lock("web", "host:1:live", LEASE, world.clock.now())  # someone runs it now
    with world.engine(AMI_V2) as engine:
        assert engine.abort_unfinished("web") is None  # signal it instead
    world.clock.advance(LEASE + 1)
    with world.engine(AMI_V2) as engine:
        result = engine.abort_unfinished("web")
    assert result is not None and result.outcome == "aborted", result
    assert_converged(world, v1, AMI_V1, desired=DESIRED, releases=[v1])


def test_a_spec_changed_since_the_crash_supersedes_the_unfinished_rollout(world: World) -> None:
    v1 = deployed(world)
    record = crashed_rollout(world, call=(5, True))  # batch 1: 2 new gated, 2 old detached
    world.write(fleet_spec(desired=DESIRED).replace("t3.micro", "t3.small"))
    with world.engine(AMI_V2) as engine:
        plan = engine.plan()
        assert f"resume unfinished rollout {record.id}" in plan.item("web").reasons
        result = engine.apply(plan)
    web = result.fleet("web")
    assert result.ok, result.to_dict()
    assert web.outcome == "promoted" and web.rollout != record.id
    v3 = web.to_release or ""
    assert v3 != record.to_release and web.from_release == v1
    # The interrupted target's template version went with its instances.
    assert_converged(world, v3, AMI_V2, desired=DESIRED, releases=[v1, v3])
    assert {m["InstanceType"] for m in world.members()} == {"t3.small"}
    assert_state_settled(world)
    assert min_healthy(world) >= DESIRED
    assert outcomes(world) == ["promoted", "promoted", "superseded"]
    with state(world) as s:
        old = s.get_rollout(record.id)
    assert old is not None and web.rollout in (old.error or "")


@pytest.mark.parametrize("abort", [False, True], ids=["resume", "abort"])
def test_a_crashed_create_is_resumed_or_removed(world: World, abort: bool) -> None:
    world.write(fleet_spec(desired=DESIRED))
    # create: CreateLaunchTemplate, CreateAutoScalingGroup, UpdateAutoScalingGroup (launch)...
    record = crashed_rollout(world, call=(2, True), ami=AMI_V1)
    with world.engine(AMI_V1) as engine:
        result = engine.apply(abort_unfinished=abort)
    web = result.fleet("web")
    assert result.ok, result.to_dict()
    assert web.rollout == record.id
    if abort:
        assert web.outcome == "aborted"
        assert world.group() == {}
        assert fleet_instances(world) == []
        templates = world.client("ec2").describe_launch_templates()["LaunchTemplates"]
        assert [t["LaunchTemplateName"] for t in templates] == []
    else:
        assert web.outcome == "promoted"
        assert_converged(
            world, record.to_release, AMI_V1, desired=DESIRED, releases=[web.to_release or ""]
        )
    assert_state_settled(world)


def test_a_crash_while_rolling_back_finishes_the_rollback(world: World, health_server) -> None:  # type: ignore[no-untyped-def]
    ec2 = world.client("ec2")

    def answer(instance_id: str) -> int:
        out = ec2.describe_instances(InstanceIds=[instance_id])
        return 500 if out["Reservations"][0]["Instances"][0]["ImageId"] == AMI_V2 else 200

    server = health_server(answer)
    checks = (
        "        - {type: ec2}\n"
        f"        - {{type: http, url: 'http://127.0.0.1:{server.port}/h/{{instance_id}}',"
        " successes: 1, failures: 1}"
    )
    world.write(fleet_spec(desired=DESIRED, checks=checks))
    with world.engine(AMI_V1) as engine:
        v1 = engine.apply().fleet("web").to_release or ""
    world.events.clear()
    # launch, gate (fails), then the rollback's retire of the new instances: crash as it starts
    record = crashed_rollout(world, CrashAtBoundary("started", 2))
    assert record.phase == "rolling_back" and "http" in (record.error or "")
    with world.engine(AMI_V2) as engine:
        result = engine.apply()
    web = result.fleet("web")
    assert web.outcome == "rolled_back" and not result.ok
    assert "http" in (web.error or "")
    assert_converged(world, v1, AMI_V1, desired=DESIRED, releases=[v1])
    assert_state_settled(world)
    assert outcomes(world) == ["promoted", "rolled_back"]


class StopWhen:
    """Requests a stop (as SIGTERM would) when step ``index`` starts."""

    def __init__(self, index: int) -> None:
        self.index, self.seen, self.engine = index, -1, None

    @hookimpl
    def immutable_sdk_step_started(self, rollout: Any, step: Any) -> None:
        self.seen += 1
        if self.seen == self.index and self.engine is not None:
            self.engine.stop.request("SIGTERM")


def test_a_stop_request_stops_at_the_next_safe_point_releases_the_lock_and_resumes(
    world: World,
) -> None:
    v1 = deployed(world)
    stopper = StopWhen(2)
    world.extra_plugins.append(stopper)
    engine = world.engine(AMI_V2)
    stopper.engine = engine  # type: ignore[assignment]
    with pytest.raises(Interrupted) as caught:
        engine.apply()
    engine.close()
    world.extra_plugins.clear()
    message = str(caught.value)
    assert "SIGTERM" in message and "resume" in message and "--abort-unfinished" in message
    with state(world) as s:
        record = s.unfinished_rollout("web")
        assert record is not None
        assert s.get_lock("web") is None, "a stop at a safe point releases the lock"
        journal = s.journal(record.id)
    notes = [e.data for e in journal if e.data.get("note") == "interrupted"]
    assert notes and notes[0]["step"] == 3 and notes[0]["during"] is False
    # the retire that was running when the stop came finished: nothing is half done
    step = [e for e in journal if e.step_index == 2 and e.data.get("note") != "capacity"]
    assert [e.status for e in step] == ["started", "note", "finished"]
    with world.engine(AMI_V2) as engine:
        status = {e["fleet"]: e for e in engine.status()}["web"]["rollout_in_progress"]
        assert status["resumable"] and status["last_step"]["kind"] == "retire"
        assert status["interrupted"]
        result = engine.apply()  # at once: no lease to wait for
    assert result.ok and result.fleet("web").rollout == record.id
    assert_converged(
        world, record.to_release, AMI_V2, desired=DESIRED, releases=[v1, record.to_release]
    )
    assert min_healthy(world) >= DESIRED


def test_a_lost_lock_stops_the_rollout_before_its_next_change(world: World) -> None:
    deployed(world)
    done: list[str] = []  # mutating calls AWS answered, in order

    class Thief:
        """While step 2 (a retire) starts, this process 'sleeps' past its lease and another
        process takes the lock over."""

        seen = -1

        @hookimpl
        def immutable_sdk_step_started(self, rollout: Any, step: Any) -> None:
            self.seen += 1
            if self.seen == 2:
                world.clock.advance(LEASE + 1)
                with state(world) as s:
                    s.acquire_lock("web", "host:2:thief", LEASE, world.clock.now())
                done.append("--- lock taken ---")

    def answered(event_name: str = "", **_: Any) -> None:
        name = "before-send." + event_name.split(".", 1)[1]
        if mutating(name):
            done.append(event_name.split(".", 2)[2])

    world.extra_plugins.append(Thief())
    with world.engine(AMI_V2) as engine:
        engine.session.events.register("after-call.*.*", answered)
        result = engine.apply()
        record = engine.state.unfinished_rollout("web")
    web = result.fleet("web")
    assert web.outcome == "lock_lost" and "host:2:thief" in (web.error or "")
    assert done[-1] == "--- lock taken ---", done  # not one change after the takeover
    assert record is not None
    with state(world) as s:
        assert s.get_lock("web").owner == "host:2:thief"  # type: ignore[union-attr]
        last = s.journal(record.id)[-1]
    assert (last.step_index, last.status) == (2, "started")  # and nothing journaled either


def test_a_held_lock_is_reported_or_waited_for(world: World) -> None:
    v1 = deployed(world)
    with state(world) as s:
        held = s.acquire_lock("web", "host:9:other", LEASE, world.clock.now())
    with world.engine(AMI_V2) as engine:
        result = engine.apply()
        # a tick says when to look again: when the holder's lease ends, unless renewed
        tick = engine.reconcile(start=True, units=["web"]).units["web"]
    web = result.fleet("web")
    assert web.outcome == "locked" and not result.ok
    assert "host:9:other" in (web.error or "") and "lease expires" in (web.error or "")
    assert result.api_calls["mutating"] == 0
    assert (tick.state, tick.next_at) == ("locked", held.lease_until)
    with world.engine(AMI_V2, lock_wait=2 * LEASE) as engine:
        start = world.clock.now()
        result = engine.apply()
    assert result.ok and result.fleet("web").outcome == "promoted"
    assert world.clock.now() - start >= LEASE / 2  # it waited for the lease to expire
    assert world.of_kind("lock.waiting")
    assert release_versions(world) == sorted([v1, result.fleet("web").to_release or ""])


def test_a_fleet_rolled_out_meanwhile_is_not_rolled_out_again(world: World) -> None:
    deployed(world)
    with world.engine(AMI_V2) as first, world.engine(AMI_V2) as second:
        plan = second.plan()  # planned before the other apply ran
        assert plan.item("web").action == "replace"
        assert first.apply().ok
        result = second.apply(plan)
    assert result.fleet("web").outcome == "noop"
    assert result.api_calls["mutating"] == 0
    assert outcomes(world) == ["promoted", "promoted"]


def test_status_shows_an_unfinished_rollout_and_its_last_step(world: World) -> None:
    deployed(world)
    record = crashed_rollout(world, CrashAtBoundary("started", 1))
    with world.engine(AMI_V2) as engine:
        entry = {e["fleet"]: e for e in engine.status()}["web"]
    ro = entry["rollout_in_progress"]
    assert ro["id"] == record.id and ro["resumable"] and not ro["running"]
    assert ro["last_step"]["kind"] == "gate" and ro["last_step"]["status"] == "started"
    assert ro["last_step"]["index"] == 1


def test_crash_class_is_not_caught_anywhere() -> None:
    assert not issubclass(Crash, Exception)


def test_an_operator_abort_reaches_a_rolling_rollout_inside_its_gate(world: World) -> None:
    v1 = deployed(world)

    class AbortAtGate:
        @hookimpl
        def immutable_sdk_step_started(self, rollout: Any, step: Any) -> None:
            if step.kind == "gate":
                with state(world) as s:
                    s.send_signal(rollout.id, "abort", world.clock.now())

    world.extra_plugins.append(AbortAtGate())
    with world.engine(AMI_V2) as engine:
        result = engine.apply()
    web = result.fleet("web")
    assert (web.outcome, web.rolled_back_to) == ("rolled_back", v1)
    assert "aborted by an operator" in (web.error or "")
    assert_converged(world, v1, AMI_V1, desired=DESIRED, releases=[v1])
    failed = [e for e in world.of_kind("step.finished") if e.data.get("outcome") == "failed"]
    assert [e.data["index"] for e in failed] == [1]  # the gate, not a later step
