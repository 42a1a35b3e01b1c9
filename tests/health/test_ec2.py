"""The ``ec2`` health check against instances in the moto server."""

from __future__ import annotations

from typing import Any

import pytest

from immutable_sdk.core.context import Context
from immutable_sdk.health.ec2 import _verdict, factory
from immutable_sdk.plugin import HealthStatus

from .conftest import gate, launch


def test_running_instances_are_healthy_with_one_call_per_poll(
    ctx: Context, network: dict[str, Any]
) -> None:
    ids = launch(ctx, network["subnets"][0], 7)
    check = factory({"type": "ec2"})
    before = ctx.session.calls.snapshot()
    for _ in range(3):
        report = check.check(gate(ids), ctx)
        assert report.status is HealthStatus.HEALTHY
    assert ctx.session.calls.since(before) == {"ec2.DescribeInstanceStatus": 3}
    assert set(report.details) == set(ids)
    assert report.details[ids[0]] == "running, instance status ok, system status ok"
    assert report.summary == "7/7 instances ok"


def test_a_stopped_or_terminated_instance_fails_the_release(
    ctx: Context, network: dict[str, Any]
) -> None:
    ec2 = ctx.client("ec2")
    ids = launch(ctx, network["subnets"][0], 3)
    ec2.stop_instances(InstanceIds=[ids[1]])
    ec2.terminate_instances(InstanceIds=[ids[2]])
    report = factory({"type": "ec2"}).check(gate(ids), ctx)
    assert report.status is HealthStatus.UNHEALTHY
    assert report.details[ids[1]] == "instance is stopped"
    assert report.details[ids[2]] == "instance is terminated"
    assert report.details[ids[0]].startswith("running")
    assert report.summary == f"2/3 instances failed ({ids[1]}: instance is stopped)"


def test_an_instance_unknown_to_ec2_is_pending_and_the_rest_still_judged(
    ctx: Context, network: dict[str, Any]
) -> None:
    ids = launch(ctx, network["subnets"][0], 2)
    ghost = "i-0123456789abcdef0"
    before = ctx.session.calls.snapshot()
    report = factory({"type": "ec2"}).check(gate([*ids, ghost]), ctx)
    assert report.status is HealthStatus.PENDING
    assert report.details[ghost] == "not known to EC2 (yet)"
    assert report.details[ids[0]].startswith("running")
    # the failed batch is retried once without the id AWS named
    assert ctx.session.calls.since(before) == {"ec2.DescribeInstanceStatus": 2}


def test_more_than_100_instances_are_described_in_chunks_of_100(
    ctx: Context, network: dict[str, Any]
) -> None:
    ids = launch(ctx, network["subnets"][0], 101)
    before = ctx.session.calls.snapshot()
    report = factory({"type": "ec2"}).check(gate(ids), ctx)
    assert report.status is HealthStatus.HEALTHY
    assert len(report.details) == 101
    assert ctx.session.calls.since(before) == {"ec2.DescribeInstanceStatus": 2}


def test_no_instances_yet_is_pending_without_a_call(ctx: Context) -> None:
    report = factory({"type": "ec2"}).check(gate([]), ctx)
    assert report.status is HealthStatus.PENDING
    assert ctx.session.calls.total == 0


def _status(state: str, instance: str, system: str) -> dict[str, Any]:
    # the shape of one InstanceStatuses entry of DescribeInstanceStatus
    return {
        "InstanceId": "i-1",
        "InstanceState": {"Name": state},
        "InstanceStatus": {"Status": instance},
        "SystemStatus": {"Status": system},
    }


@pytest.mark.parametrize(
    ("state", "instance", "system", "expected"),
    [
        ("running", "ok", "ok", HealthStatus.HEALTHY),
        ("pending", "not-applicable", "not-applicable", HealthStatus.PENDING),
        ("running", "initializing", "initializing", HealthStatus.PENDING),
        ("running", "ok", "initializing", HealthStatus.PENDING),
        ("running", "insufficient-data", "ok", HealthStatus.PENDING),
        ("running", "impaired", "ok", HealthStatus.UNHEALTHY),
        ("running", "ok", "impaired", HealthStatus.UNHEALTHY),
        ("stopping", "not-applicable", "not-applicable", HealthStatus.UNHEALTHY),
        ("shutting-down", "not-applicable", "not-applicable", HealthStatus.UNHEALTHY),
    ],
)
def test_statuses_that_moto_does_not_produce(
    state: str, instance: str, system: str, expected: HealthStatus
) -> None:
    assert _verdict(_status(state, instance, system))[0] is expected
