"""The ``elb`` health check against target groups in the moto server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from immutable_sdk.core.context import Context
from immutable_sdk.health.elb import factory
from immutable_sdk.plugin import HealthStatus

from .conftest import gate, launch


def _target_group(ctx: Context, network: dict[str, Any], name: str) -> str:
    arn: str = ctx.client("elbv2").create_target_group(
        Name=name, Protocol="HTTP", Port=80, VpcId=network["vpc"], HealthCheckPath="/healthz"
    )["TargetGroups"][0]["TargetGroupArn"]
    return arn


def _register(ctx: Context, arn: str, ids: list[str]) -> None:
    ctx.client("elbv2").register_targets(TargetGroupArn=arn, Targets=[{"Id": i} for i in ids])


@pytest.fixture
def fleet(ctx: Context, network: dict[str, Any]) -> dict[str, Any]:
    ids = launch(ctx, network["subnets"][0], 4)
    web = _target_group(ctx, network, "web-tg")
    api = _target_group(ctx, network, "api-tg")
    _register(ctx, web, ids)
    _register(ctx, api, ids)
    return {"ids": ids, "groups": (web, api)}


def test_registered_running_members_are_healthy_with_one_call_per_group_per_poll(
    ctx: Context, fleet: dict[str, Any]
) -> None:
    check = factory({"type": "elb"})
    before = ctx.session.calls.snapshot()
    for _ in range(2):
        report = check.check(gate(fleet["ids"], fleet["groups"]), ctx)
        assert report.status is HealthStatus.HEALTHY
    assert ctx.session.calls.since(before) == {"elbv2.DescribeTargetHealth": 4}
    assert report.details[fleet["ids"][0]] == "healthy in 2 target groups"
    assert report.summary == "4/4 instances healthy in 2 groups"


def test_only_current_members_are_judged(ctx: Context, fleet: dict[str, Any]) -> None:
    # A terminated old instance stays listed as healthy in moto; it is not a member, so it must
    # neither count for nor appear in the report.
    old = fleet["ids"][0]
    ctx.client("ec2").terminate_instances(InstanceIds=[old])
    members = fleet["ids"][1:]
    report = factory({"type": "elb"}).check(gate(members, fleet["groups"]), ctx)
    assert report.status is HealthStatus.HEALTHY
    assert set(report.details) == set(members)


def test_a_member_not_registered_yet_is_pending(
    ctx: Context, fleet: dict[str, Any], network: dict[str, Any]
) -> None:
    late = launch(ctx, network["subnets"][1], 1)[0]
    _register(ctx, fleet["groups"][0], [late])
    report = factory({"type": "elb"}).check(gate([*fleet["ids"], late], fleet["groups"]), ctx)
    assert report.status is HealthStatus.PENDING
    assert report.details[late] == "not registered in api-tg"
    assert report.summary == "4/5 instances healthy"


def test_a_stopped_member_is_unused_and_pending(ctx: Context, fleet: dict[str, Any]) -> None:
    ctx.client("ec2").stop_instances(InstanceIds=[fleet["ids"][1]])
    report = factory({"type": "elb"}).check(gate(fleet["ids"], fleet["groups"]), ctx)
    assert report.status is HealthStatus.PENDING
    assert report.details[fleet["ids"][1]] == "unused in web-tg, unused in api-tg"


def test_no_target_groups_is_healthy_without_a_call(ctx: Context) -> None:
    report = factory({"type": "elb"}).check(gate(["i-0123456789abcdef0"]), ctx)
    assert report.status is HealthStatus.HEALTHY
    assert report.summary == "no target groups"
    assert ctx.session.calls.total == 0


@pytest.fixture
def unhealthy(ctx: Context) -> Iterator[set[str]]:
    """Instance ids that DescribeTargetHealth reports unhealthy.

    moto marks every running target healthy; this rewrites the real answer at botocore's
    after-call event, the edge of the process, so the request and the call count stay real.
    """
    ids: set[str] = set()

    def rewrite(parsed: dict[str, Any], **_: Any) -> None:
        for desc in parsed.get("TargetHealthDescriptions", []):
            if desc["Target"]["Id"] in ids:
                desc["TargetHealth"] = {
                    "State": "unhealthy",
                    "Reason": "Target.ResponseCodeMismatch",
                }

    events = ctx.client("elbv2").meta.events
    event = "after-call.elastic-load-balancing-v2.DescribeTargetHealth"
    events.register(event, rewrite)
    yield ids
    events.unregister(event, rewrite)


def test_unhealthy_fails_after_the_threshold_of_consecutive_polls(
    ctx: Context, fleet: dict[str, Any], unhealthy: set[str]
) -> None:
    bad = fleet["ids"][2]
    unhealthy.add(bad)
    check = factory({"type": "elb", "unhealthy_threshold": 3})
    targets = gate(fleet["ids"], fleet["groups"])
    first = check.check(targets, ctx)
    assert first.status is HealthStatus.PENDING
    assert first.details[bad] == "unhealthy in web-tg (Target.ResponseCodeMismatch), 1/3 polls"
    assert check.check(targets, ctx).status is HealthStatus.PENDING
    third = check.check(targets, ctx)
    assert third.status is HealthStatus.UNHEALTHY
    assert third.details[bad].endswith("3/3 polls")
    assert third.summary == (
        f"1/4 instances unhealthy ({bad}: unhealthy in web-tg (Target.ResponseCodeMismatch), "
        "3/3 polls)"
    )


def test_a_recovery_resets_the_count(
    ctx: Context, fleet: dict[str, Any], unhealthy: set[str]
) -> None:
    bad = fleet["ids"][0]
    check = factory({"type": "elb", "unhealthy_threshold": 2})
    targets = gate(fleet["ids"], fleet["groups"])
    unhealthy.add(bad)
    assert check.check(targets, ctx).status is HealthStatus.PENDING
    unhealthy.clear()
    assert check.check(targets, ctx).status is HealthStatus.HEALTHY
    unhealthy.add(bad)
    report = check.check(targets, ctx)
    assert report.status is HealthStatus.PENDING
    assert report.details[bad].endswith("1/2 polls")
