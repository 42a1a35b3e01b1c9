"""The ``cloudwatch-alarm`` health check against alarms in the moto server."""

from __future__ import annotations

import pytest

from immutable_sdk.core.context import Context
from immutable_sdk.health.alarm import factory
from immutable_sdk.plugin import HealthStatus

from .conftest import gate


def _alarm(ctx: Context, name: str, state: str | None = "OK", reason: str = "seeded") -> None:
    cloudwatch = ctx.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="Shop",
        MetricName=f"{name}-metric",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    if state is not None:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)


def test_alarms_in_ok_are_healthy_with_one_call_per_poll(ctx: Context) -> None:
    names = [f"web-{n}" for n in range(5)]
    for name in names:
        _alarm(ctx, name)
    check = factory({"type": "cloudwatch-alarm", "alarms": names})
    before = ctx.session.calls.snapshot()
    for _ in range(3):
        report = check.check(gate(["i-1", "i-2"]), ctx)
        assert report.status is HealthStatus.HEALTHY
    assert ctx.session.calls.since(before) == {"cloudwatch.DescribeAlarms": 3}
    assert report.details == {name: "OK: seeded" for name in names}
    assert report.summary == "5 alarms not firing"


def test_an_alarm_in_alarm_fails_at_once_and_names_its_reason(ctx: Context) -> None:
    _alarm(ctx, "web-5xx")
    _alarm(ctx, "web-latency")
    check = factory({"type": "cloudwatch-alarm", "alarms": ["web-5xx", "web-latency"]})
    assert check.check(gate(["i-1"]), ctx).status is HealthStatus.HEALTHY
    ctx.client("cloudwatch").set_alarm_state(
        AlarmName="web-5xx", StateValue="ALARM", StateReason="Threshold Crossed: 12 > 1"
    )
    report = check.check(gate(["i-1"]), ctx)
    assert report.status is HealthStatus.UNHEALTHY
    assert report.summary == "alarm 'web-5xx' is in ALARM: Threshold Crossed: 12 > 1"
    assert report.details["web-5xx"] == "ALARM: Threshold Crossed: 12 > 1"
    assert report.details["web-latency"] == "OK: seeded"


def test_a_missing_alarm_is_unhealthy_with_a_clear_message(ctx: Context) -> None:
    _alarm(ctx, "web-5xx")
    report = factory({"type": "cloudwatch-alarm", "alarms": ["web-5xx", "web-typo"]}).check(
        gate(["i-1"]), ctx
    )
    assert report.status is HealthStatus.UNHEALTHY
    assert report.summary == "alarm 'web-typo' does not exist in us-east-1"
    assert report.details["web-typo"] == "does not exist in us-east-1"


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (None, HealthStatus.HEALTHY),
        ("ok", HealthStatus.HEALTHY),
        ("pending", HealthStatus.PENDING),
        ("fail", HealthStatus.UNHEALTHY),
    ],
)
def test_insufficient_data_follows_the_setting(
    ctx: Context, setting: str | None, expected: HealthStatus
) -> None:
    _alarm(ctx, "fresh", state="INSUFFICIENT_DATA", reason="no data yet")
    _alarm(ctx, "steady")
    config = {"type": "cloudwatch-alarm", "alarms": ["fresh", "steady"]}
    if setting is not None:
        config["insufficient_data"] = setting
    report = factory(config).check(gate(["i-1"]), ctx)
    assert report.status is expected
    assert report.details["fresh"] == "INSUFFICIENT_DATA: no data yet"


def test_more_than_100_alarms_take_one_call_per_100(ctx: Context) -> None:
    names = [f"a-{n:03}" for n in range(101)]
    for name in names:
        _alarm(ctx, name, state=None)
    ctx.client("cloudwatch").set_alarm_state(AlarmName="a-100", StateValue="ALARM", StateReason="x")
    check = factory({"type": "cloudwatch-alarm", "alarms": names})
    before = ctx.session.calls.snapshot()
    report = check.check(gate(["i-1"]), ctx)
    assert ctx.session.calls.since(before) == {"cloudwatch.DescribeAlarms": 2}
    assert report.status is HealthStatus.UNHEALTHY
    assert report.summary == "alarm 'a-100' is in ALARM: x"
