"""Transient AWS faults are retried by botocore (and reported); anything else rolls back.

Faults are injected at the HTTP layer: a ``before-send`` handler answers a request itself, as
AWS would (a 500, a 503, or a 400 with a throttling code in the service's error format), so
botocore's own retry logic, not the SDK's, decides what happens next.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from immutable_sdk.aws.fence import mutating
from immutable_sdk.core.engine import Engine

from .conftest import AMI_V1, AMI_V2, World, fleet_spec

RETRIED = [
    (500, "InternalError"),
    (503, "ServiceUnavailable"),
    (400, "Throttling"),
    (400, "RequestLimitExceeded"),
    (400, "PriorRequestNotComplete"),
]


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def error_response(url: str, status: int, code: str, service: str) -> AWSResponse:
    """What AWS answers with an error, in the service's own format (EC2's or the query one)."""
    if service == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>injected</Message>"
            "</Error></Errors><RequestID>injected</RequestID></Response>"
        )
    else:
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            "<Message>injected</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
        )
    headers = {"Content-Type": "text/xml", "x-amzn-RequestId": "injected"}
    return AWSResponse(url, status, headers, _Raw(body.encode()))


class Faults:
    """Answers ``rate`` of the requests with a retryable error, from a seeded random source."""

    def __init__(self, engine: Engine, rate: float, seed: int = 7) -> None:
        self.rate = rate
        self.random = random.Random(seed)
        self.injected: Counter[str] = Counter()
        engine.session.events.register("before-send.*.*", self)

    def __call__(self, request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        if self.random.random() >= self.rate:
            return None
        status, code = self.random.choice(RETRIED)
        service = event_name.split(".")[1]
        self.injected[code] += 1
        return error_response(request.url, status, code, service)


@pytest.mark.slow
def test_a_rollout_completes_through_a_fifth_of_calls_failing_and_reports_the_retries(
    world: World,
) -> None:
    world.write(fleet_spec(desired=2, strategy="{type: rolling, batch_size: 1}"))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    with world.engine(AMI_V2, max_attempts=10) as engine:
        faults = Faults(engine, 0.2, seed=11)
        plan = engine.plan()  # (apply counts its own calls, not the plan's)
        faults.injected.clear()
        result = engine.apply(plan)
    assert result.ok, result.to_dict()
    assert result.fleet("web").outcome == "promoted"
    injected = sum(faults.injected.values())
    assert injected >= 5, faults.injected  # the seed gives a fair share of every kind
    assert len(faults.injected) >= 3, faults.injected
    # Every injected fault cost one retry, and the result says so.
    assert result.api_calls["retries"] == injected
    assert {m["ImageId"] for m in world.members()} == {AMI_V2}


def test_a_non_retryable_error_fails_the_step_and_rolls_back(world: World) -> None:
    world.write(fleet_spec(desired=2, strategy="{type: rolling, batch_size: 1}"))
    with world.engine(AMI_V1) as engine:
        v1 = engine.apply().fleet("web").to_release
    refused: list[str] = []

    def refuse_first_detach(request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        if event_name.endswith(".DetachInstances") and not refused:
            refused.append(event_name)
            return error_response(request.url, 403, "AccessDenied", "autoscaling")
        return None

    with world.engine(AMI_V2) as engine:
        engine.session.events.register("before-send.*.*", refuse_first_detach)
        result = engine.apply()
    web = result.fleet("web")
    assert refused and web.outcome == "rolled_back" and web.rolled_back_to == v1
    assert "DetachInstances" in (web.error or "") and "AccessDenied" in (web.error or "")
    assert result.api_calls["retries"] == 0  # refused, not retried
    assert {m["ImageId"] for m in world.members()} == {AMI_V1}
    failed = [e for e in world.of_kind("step.finished") if e.data.get("outcome") == "failed"]
    assert failed and "AccessDenied" in failed[0].data["error"]


def test_mutating_names_requests_that_change_something() -> None:
    assert mutating("before-send.auto-scaling.UpdateAutoScalingGroup")
    assert mutating("before-send.route-53.ChangeResourceRecordSets")
    assert not mutating("before-send.ec2.DescribeInstances")
    assert not mutating("before-send.elastic-load-balancing-v2.DescribeTargetHealth")
    assert not mutating("before-send.dynamodb.PutItem")  # the state store's own lock
