"""The tick seam without AWS: answers, the reconcile adapter, the generated definition."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from immutable_sdk.core.orchestrator.definition import (
    TICK_ERROR,
    UNIT_FAILED,
    TickSettings,
    definition,
)
from immutable_sdk.core.orchestrator.reconcile_tick import ReconcileTick, answer_of
from immutable_sdk.core.orchestrator.tick import TickAnswer, TickRequest
from immutable_sdk.errors import ImmutableSdkError, UsageError


@dataclass
class Entry:
    state: str
    next_at: float | None = None
    error: str | None = None
    waiting_for: str | None = None
    rollout: str | None = None


@dataclass
class Result:
    units: dict[str, Any] = field(default_factory=dict)


def test_reconcile_states_become_the_state_machine_s() -> None:
    at = 1_800_000_000.5  # epoch seconds, as Engine.reconcile gives them
    answer = answer_of(Result({"web": Entry("progressing", next_at=at, rollout="r-1")}), "web")
    assert answer == TickAnswer("progressing", "2027-01-15T08:00:01Z", "", "r-1")  # rounded up
    paused = answer_of(Result({"web": Entry("waiting_for_operator", waiting_for="promote")}), "web")
    assert (paused.state, paused.reason) == ("waiting", "waiting_for_operator: promote")
    assert answer_of(Result({"web": Entry("locked")}), "web").state == "waiting"
    # a lock whose lease ends at a known time (its worker died mid-tick): ask again then
    held = answer_of(Result({"web": Entry("locked", next_at=at, error="locked by h:1:x")}), "web")
    assert held == TickAnswer("progressing", "2027-01-15T08:00:01Z", "locked by h:1:x")
    # a live holder (an operator's abort, a tick) lets go well before its lease would end: a
    # lease ending later than the recheck is asked again at the recheck
    locked = Entry("locked", next_at=at, error="locked by h:1:x")
    soon = answer_of(Result({"web": locked}), "web", now=at - 60)
    assert soon == TickAnswer("progressing", "2027-01-15T07:59:11Z", "locked by h:1:x")
    assert answer_of(Result({"web": locked}), "web", now=at - 5) == held
    as_text = Entry("locked", next_at="2027-01-15T08:00:00.5Z", error="locked by h:1:x")
    assert answer_of(Result({"web": as_text}), "web", now=at - 60) == soon
    failed = answer_of({"units": {"web": {"state": "failed", "error": "gate: 2 unhealthy"}}}, "web")
    assert (failed.state, failed.reason) == ("failed", "gate: 2 unhealthy")
    with pytest.raises(ImmutableSdkError, match="said nothing about this unit"):
        answer_of(Result({}), "web")
    with pytest.raises(ImmutableSdkError, match="unknown state 'odd'"):
        answer_of(Result({"web": Entry("odd")}), "web")


def request(unit: str = "web", digest: str = "sha256:a") -> TickRequest:
    body = {
        "task_token": "t",
        "unit": {"key": unit, "fleet": unit, "region": "us-east-1", "spec_digest": digest},
        "wave": "all",
        "plan": "p",
        "execution": "arn:x",
        "heartbeat_seconds": 9,
    }
    return TickRequest.from_message(json.dumps(body))


def test_the_adapter_ticks_one_unit_and_refuses_another_spec() -> None:
    calls: list[dict[str, Any]] = []

    class Engine:
        def reconcile(self, **kwargs: Any) -> Result:
            calls.append(kwargs)
            return Result({"web": Entry("converged")})

    @contextmanager
    def opened() -> Iterator[Engine]:
        yield Engine()

    tick = ReconcileTick(opened, spec_digests={"web": "sha256:a"}, budget=30)
    assert tick.tick(request()).state == "converged"
    assert calls == [{"start": True, "budget": 30, "units": ["web"]}]
    with pytest.raises(ImmutableSdkError, match="spec differs"):
        tick.tick(request(digest="sha256:b"))
    assert request().heartbeat_seconds == 9
    with pytest.raises(UsageError, match="not a tick message"):
        TickRequest.from_message("{}")


def test_answers_are_what_the_choice_reads() -> None:
    with pytest.raises(ValueError, match="tick state must be one of"):
        TickAnswer("done")
    with pytest.raises(ValueError, match="needs a time zone"):
        TickAnswer("progressing", "2026-12-05T10:00:00")
    out = TickAnswer("progressing", "2026-12-05T10:00:00+01:00").to_output()
    assert out == {"state": "progressing", "next_at": "2026-12-05T09:00:00Z", "reason": "",
                   "rollout": None}  # fmt: skip


def test_the_definition_is_one_loop_per_unit_inside_ordered_stages_and_waves() -> None:
    doc = definition("https://q", TickSettings(heartbeat_seconds=30, timeout_seconds=900))
    waves = doc["States"]["Waves"]
    assert (waves["ItemsPath"], waves["MaxConcurrency"]) == ("$.waves", 1)
    wave = waves["ItemProcessor"]["States"]
    assert (wave["Stages"]["ItemsPath"], wave["Stages"]["MaxConcurrency"]) == ("$.wave.stages", 1)
    # no blind wait after a wave: its bake is watched by its units' ticks
    assert list(wave) == ["Stages"] and wave["Stages"]["End"] is True
    stage = wave["Stages"]["ItemProcessor"]["States"]
    assert stage["Units"]["MaxConcurrencyPath"] == "$.stage.parallelism"
    assert stage["StageFailed"] == {
        "Type": "Fail",
        "Error": UNIT_FAILED,
        "CausePath": "$.failed.cause",
    }
    loop = stage["Units"]["ItemProcessor"]["States"]
    tick = loop["Tick"]
    assert tick["Resource"] == "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    assert (tick["HeartbeatSeconds"], tick["TimeoutSeconds"]) == (30, 900)
    assert tick["Parameters"]["MessageBody"]["task_token.$"] == "$$.Task.Token"
    retried = [r["ErrorEquals"] for r in tick["Retry"]]
    assert retried == [["States.Timeout", "States.HeartbeatTimeout"], [TICK_ERROR]]
    assert [c["ErrorEquals"] for c in tick["Catch"]] == [["States.ALL"]]
    assert loop["WaitUntil"] == {"Type": "Wait", "TimestampPath": "$.tick.next_at", "Next": "Tick"}
    assert loop["WaitPoll"]["Next"] == "Tick"
    # a unit's branch never fails (a failing branch would stop its siblings mid-rollout)
    assert {s["Type"] for s in loop.values()} == {"Task", "Choice", "Wait", "Pass"}
    # every Next names a state of its own state list
    for states in (doc["States"], wave, stage, loop):
        for state in states.values():
            targets = [state.get("Next"), state.get("Default")]
            targets += [c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])]
            assert {t for t in targets if t} <= set(states)


def test_a_worker_s_ticks_leave_no_aws_client_behind(aws: str, tmp_path: Path) -> None:
    """A worker runs ticks for weeks, each with an engine of its own: every client a tick made
    (and the service models its session loaded) must be freed with it, health checks' shared
    readers included (one kept its client alive: a worker grew by megabytes a tick)."""
    import gc

    import botocore.client

    from immutable_sdk.core.orchestrator.ticks import TickContext, reconcile_tick, unit_spec_digests
    from immutable_sdk.sandbox import Sandbox
    from immutable_sdk.spec.load import load_spec
    from immutable_sdk.testing import AMI_V1, sample_spec

    def clients() -> int:
        gc.collect()
        return sum(isinstance(o, botocore.client.BaseClient) for o in gc.get_objects())

    path = tmp_path / "spec.yaml"
    checks = ["{type: ec2}", "{type: cloudwatch-alarm, alarms: [web-5xx]}"]
    path.write_text(sample_spec(desired=1, checks=checks).replace("${IMAGE_ID}", AMI_V1))
    spec = load_spec([path])
    Sandbox.attach(aws).seed(spec)
    boto3.client("cloudwatch", endpoint_url=aws, region_name="us-east-1").put_metric_alarm(
        AlarmName="web-5xx",
        MetricName="5xx",
        Namespace="app",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    ticker = reconcile_tick(TickContext(spec, (str(path),), {"endpoint_url": aws}, lease=5))
    digest = unit_spec_digests(spec)["web"]
    before = clients()
    answers = [ticker.tick(request("web", digest)).state for _ in range(3)]
    assert answers[-1] == "converged", answers
    assert clients() <= before
