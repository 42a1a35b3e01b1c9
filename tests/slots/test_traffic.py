"""Route 53 weighted records: one change batch per shift, INSYNC waits and retries on the clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from immutable_sdk.aws.session import AwsSession
from immutable_sdk.aws.traffic import TrafficApi, TrafficSpec
from immutable_sdk.clock import VirtualClock
from immutable_sdk.errors import AwsError, UsageError
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.model import Capacity, FleetSpec, HealthSpec, PluginConfig

DOCUMENT = {
    "region": "us-east-1",
    "fleets": {
        "checkout": {
            "traffic": {
                "route53": {"zone": "example.com."},
                "slots": {
                    "blue": {"target_group": "checkout-blue", "load_balancer": "checkout-blue"},
                    "green": {"target_group": "checkout-green"},
                },
            }
        }
    },
}


def traffic(alias: bool = True) -> TrafficSpec:
    fleet = FleetSpec(
        name="checkout",
        image="web",
        instance_type="t3.micro",
        capacity=Capacity(1, 1, 2),
        strategy=PluginConfig("canary", base_dir=Path(".")),
        health=HealthSpec(),
        traffic={
            "route53": {
                "zone": "example.com.",
                "record": "checkout.example.com",
                "ttl": 30,
                "alias": alias,
            },
            "slots": DOCUMENT["fleets"]["checkout"]["traffic"]["slots"],  # type: ignore[index]
        },
    )
    return TrafficSpec.of(fleet)


class Clock(VirtualClock):
    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        super().sleep(seconds)


class Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body

    def read(self, *_: Any) -> bytes:
        return self.body


def error(request: Any, code: str) -> AWSResponse:
    body = (
        '<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error>'
        f"<Type>Sender</Type><Code>{code}</Code><Message>try later</Message></Error>"
        "<RequestId>r-1</RequestId></ErrorResponse>"
    ).encode()
    return AWSResponse(request.url, 400, {}, Raw(body))


@pytest.fixture
def api(aws: str) -> tuple[TrafficApi, Clock, AwsSession]:
    Sandbox.attach(aws).seed(DOCUMENT)
    session = AwsSession("us-east-1", endpoint_url=aws)
    clock = Clock()
    beats: list[float] = []
    return TrafficApi(session, clock, heartbeat=lambda: beats.append(clock.now())), clock, session


def records(aws: str) -> list[dict[str, Any]]:
    r53 = boto3.client("route53", endpoint_url=aws, region_name="us-east-1")
    zone = r53.list_hosted_zones_by_name(DNSName="example.com.")["HostedZones"][0]["Id"]
    out = r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return [r for r in out if r["Name"] == "checkout.example.com."]


def test_both_weights_in_one_change_with_aliases_to_each_slots_load_balancer(
    aws: str, api: tuple[TrafficApi, Clock, AwsSession]
) -> None:
    routes, _, session = api
    spec = traffic()
    assert routes.weights(spec) == {}
    routes.set_weights(spec, {"blue": 100})
    assert routes.weights(spec) == {"blue": 100, "green": 0}
    routes.set_weights(spec, {"blue": 70, "green": 30})
    assert routes.weights(spec) == {"blue": 70, "green": 30}
    assert session.calls.snapshot()["route53.ChangeResourceRecordSets"] == 2
    found = {r["SetIdentifier"]: r for r in records(aws)}
    # green names no load balancer: its target group's is used
    assert found["green"]["AliasTarget"]["DNSName"].startswith("checkout-green")
    assert found["blue"]["Type"] == "A" and "TTL" not in found["blue"]
    routes.delete_records(spec)
    assert routes.weights(spec) == {} and records(aws) == []


def test_cname_records_carry_the_ttl(aws: str, api: tuple[TrafficApi, Clock, AwsSession]) -> None:
    routes, _, _ = api
    routes.set_weights(traffic(alias=False), {"green": 100})
    found = {r["SetIdentifier"]: r for r in records(aws)}
    assert found["green"]["Type"] == "CNAME" and found["green"]["TTL"] == 30
    assert found["green"]["ResourceRecords"][0]["Value"].startswith("checkout-green")
    assert found["blue"]["Weight"] == 0


def test_all_zero_and_unknown_slots_are_refused(api: tuple[TrafficApi, Clock, AwsSession]) -> None:
    routes, _, session = api
    with pytest.raises(UsageError, match="every weight"):
        routes.set_weights(traffic(), {"blue": 0, "green": 0})
    with pytest.raises(UsageError, match="no traffic slot 'red'"):
        routes.set_weights(traffic(), {"red": 100})
    assert "route53.ChangeResourceRecordSets" not in session.calls.snapshot()


def test_prior_request_and_throttling_are_retried_and_insync_awaited_on_the_clock(
    api: tuple[TrafficApi, Clock, AwsSession],
) -> None:
    routes, clock, session = api
    faults = ["PriorRequestNotComplete", "Throttling"]
    polls = [0]

    def refuse(request: Any, **_: Any) -> AWSResponse | None:
        return error(request, faults.pop(0)) if faults else None

    def submitted(parsed: dict[str, Any], **_: Any) -> None:
        if "ChangeInfo" in parsed:
            parsed["ChangeInfo"]["Status"] = "PENDING"

    def not_yet(parsed: dict[str, Any], **_: Any) -> None:
        polls[0] += 1
        if polls[0] <= 2:
            parsed["ChangeInfo"]["Status"] = "PENDING"

    session.events.register("before-send.route-53.ChangeResourceRecordSets", refuse)
    session.events.register("after-call.route-53.ChangeResourceRecordSets", submitted)
    session.events.register("after-call.route-53.GetChange", not_yet)
    routes.set_weights(traffic(), {"blue": 100})
    assert routes.weights(traffic()) == {"blue": 100, "green": 0}
    calls = session.calls.snapshot()
    assert calls["route53.ChangeResourceRecordSets"] == 3  # two refusals, then accepted
    assert calls["route53.GetChange"] == 3  # PENDING, PENDING, INSYNC (after the change)
    # every wait went through the clock: jittered retries, then capped doubling polls
    assert len(clock.sleeps) == 5
    assert 0.5 <= clock.sleeps[0] <= 1.0 and 1.0 <= clock.sleeps[1] <= 2.0
    assert clock.sleeps[2:] == [1.0, 2.0, 4.0]


def test_a_refusal_that_is_not_transient_is_an_aws_error_at_once(
    api: tuple[TrafficApi, Clock, AwsSession],
) -> None:
    routes, clock, session = api
    session.events.register(
        "before-send.route-53.ChangeResourceRecordSets",
        lambda request, **_: error(request, "InvalidChangeBatch"),
    )
    with pytest.raises(AwsError, match="InvalidChangeBatch") as info:
        routes.set_weights(traffic(), {"blue": 100})
    assert info.value.code == "InvalidChangeBatch" and clock.sleeps == []


def test_a_change_that_never_syncs_times_out(api: tuple[TrafficApi, Clock, AwsSession]) -> None:
    routes, clock, session = api
    routes.sync_timeout = 60

    def pend(parsed: dict[str, Any], **_: Any) -> None:
        if "ChangeInfo" in parsed:
            parsed["ChangeInfo"]["Status"] = "PENDING"

    session.events.register("after-call.route-53.ChangeResourceRecordSets", pend)
    session.events.register("after-call.route-53.GetChange", pend)
    with pytest.raises(AwsError, match="still PENDING after 60s"):
        routes.set_weights(traffic(), {"blue": 100})
    assert sum(clock.sleeps) == pytest.approx(60) and max(clock.sleeps) <= 16
