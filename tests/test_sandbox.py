"""The embedded sandbox: loopback only, and seeded so that the same spec runs there and on AWS."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from immutable_sdk.aws.network import (
    resolve_security_groups,
    resolve_subnets,
    resolve_target_groups,
)
from immutable_sdk.errors import UsageError
from immutable_sdk.sandbox import Sandbox, sandbox_env
from immutable_sdk.spec.model import (
    Capacity,
    FleetSpec,
    HealthSpec,
    ImageSpec,
    PluginConfig,
    Spec,
    StateSpec,
)


def _fleet(name: str, **kwargs: Any) -> FleetSpec:
    return FleetSpec(
        name=name,
        image="web",
        instance_type="t3.small",
        capacity=Capacity(min=1, desired=2, max=4),
        strategy=PluginConfig("rolling", {"type": "rolling"}),
        **kwargs,
    )


def _spec() -> Spec:
    web = _fleet(
        "web",
        health=HealthSpec(
            checks=(
                PluginConfig("ec2", {"type": "ec2"}),
                PluginConfig(
                    "cloudwatch-alarm",
                    {"type": "cloudwatch-alarm", "alarms": ["web-5xx", "web-latency"]},
                ),
            )
        ),
        subnets=("demo-private-a", "demo-private-b", "subnet-aaa"),
        security_groups=("web", "sg-123"),
        target_groups=("web-tg",),
    )
    checkout = _fleet(
        "checkout",
        health=HealthSpec(
            checks=(
                PluginConfig(
                    "cloudwatch-alarm", {"type": "cloudwatch-alarm", "alarms": ["web-5xx"]}
                ),
            )
        ),
        subnets=("demo-private-b", "demo-private-c"),
        security_groups=("web",),
        traffic={
            "route53": {"zone": "example.com.", "record": "checkout.example.com", "ttl": 60},
            "slots": {
                "blue": {"target_group": "checkout-blue", "load_balancer": "checkout-blue"},
                "green": {"target_group": "checkout-green"},
            },
        },
    )
    image = ImageSpec(
        name="web",
        builder="ami",
        config={"builder": "ami", "id": "ami-12345678"},
        regions=("us-east-1",),
        retain=None,
        base_dir=Path("."),
    )
    return Spec(
        api_version="immutable-sdk/v1",
        name="shop",
        region="us-east-1",
        state=StateSpec(),
        images={"web": image},
        fleets={"web": web, "checkout": checkout},
    )


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def clean(box: Sandbox, aws: str) -> Sandbox:
    # moto servers in one process share one account: the `aws` fixture resets it for the test
    return box


def _client(box: Sandbox, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=box.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of listening TCP sockets on ``port`` (Linux /proc/net/tcp{,6})."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_the_sandbox_listens_on_loopback_only_and_stops(tmp_path: Path) -> None:
    box = Sandbox().start()
    url = box.url
    assert url.startswith("http://127.0.0.1:")
    port = int(url.rsplit(":", 1)[1])
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux's /proc/net/tcp")
    assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, little-endian hex
    box.stop()
    with pytest.raises(UsageError, match="not started"):
        _ = box.url
    with socket.socket() as sock, pytest.raises(OSError):
        sock.settimeout(2)
        sock.connect(("127.0.0.1", port))


def test_seed_creates_what_the_spec_references(clean: Sandbox) -> None:
    summary = clean.seed(_spec())
    ec2, elbv2 = _client(clean, "ec2"), _client(clean, "elbv2")

    vpc = ec2.describe_vpcs(VpcIds=[summary["vpc"]])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.0.0.0/16"

    subnets = resolve_subnets(ec2, ["demo-private-a", "demo-private-b", "demo-private-c"])
    described = ec2.describe_subnets(SubnetIds=subnets)["Subnets"]
    assert {s["VpcId"] for s in described} == {summary["vpc"]}
    # the subnets of one fleet spread over distinct zones, the AWS way
    web = resolve_subnets(ec2, ["demo-private-a", "demo-private-b", "subnet-aaa"])
    zones = {s["AvailabilityZone"] for s in ec2.describe_subnets(SubnetIds=web)["Subnets"]}
    assert zones == {"us-east-1a", "us-east-1b", "us-east-1c"}
    assert all(
        s["CidrBlock"].startswith("10.0.") and s["CidrBlock"].endswith(".0/24") for s in described
    )
    assert summary["subnets"]["demo-private-a"] == subnets[0]

    # an id-like reference gets a stand-in tagged with it, and resolves through the tag
    assert resolve_subnets(ec2, ["subnet-aaa"]) == [summary["subnets"]["subnet-aaa"]]
    assert resolve_security_groups(ec2, ["web", "sg-123"]) == [
        summary["security_groups"]["web"],
        summary["security_groups"]["sg-123"],
    ]
    assert any("'subnet-aaa'" in note for note in summary["substituted"])
    assert any("'sg-123'" in note for note in summary["substituted"])

    arns = resolve_target_groups(elbv2, ["web-tg", "checkout-blue", "checkout-green"])
    for arn in arns:
        group = elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]
        assert (group["Protocol"], group["Port"], group["HealthCheckPath"]) == (
            "HTTP",
            80,
            "/healthz",
        )
        assert group["VpcId"] == summary["vpc"]
    lbs = {
        lb["LoadBalancerName"]: lb
        for lb in elbv2.describe_load_balancers(
            Names=["web-tg", "checkout-blue", "checkout-green"]
        )["LoadBalancers"]
    }
    assert {lb["Scheme"] for lb in lbs.values()} == {"internal"}
    for name, arn in zip(["web-tg", "checkout-blue", "checkout-green"], arns, strict=True):
        listeners = elbv2.describe_listeners(LoadBalancerArn=lbs[name]["LoadBalancerArn"])
        (listener,) = listeners["Listeners"]
        assert (listener["Protocol"], listener["Port"]) == ("HTTP", 80)
        forward = listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
        assert [g["TargetGroupArn"] for g in forward] == [arn]

    zones = _client(clean, "route53").list_hosted_zones()["HostedZones"]
    assert [z["Name"] for z in zones] == ["example.com."]
    assert summary["hosted_zones"]["example.com."] == zones[0]["Id"].split("/")[-1]

    alarms = _client(clean, "cloudwatch").describe_alarms(AlarmNames=["web-5xx", "web-latency"])
    assert {(a["AlarmName"], a["StateValue"]) for a in alarms["MetricAlarms"]} == {
        ("web-5xx", "OK"),
        ("web-latency", "OK"),
    }
    assert summary["alarms"] == ["web-5xx", "web-latency"]


def _inventory(box: Sandbox) -> dict[str, Any]:
    ec2, elbv2 = _client(box, "ec2"), _client(box, "elbv2")
    return {
        "vpcs": sorted(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]),
        "subnets": sorted(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]),
        "groups": sorted(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]),
        "tgs": sorted(t["TargetGroupArn"] for t in elbv2.describe_target_groups()["TargetGroups"]),
        "lbs": sorted(
            b["LoadBalancerArn"] for b in elbv2.describe_load_balancers()["LoadBalancers"]
        ),
        "listeners": sorted(
            listener["ListenerArn"]
            for b in elbv2.describe_load_balancers()["LoadBalancers"]
            for listener in elbv2.describe_listeners(LoadBalancerArn=b["LoadBalancerArn"])[
                "Listeners"
            ]
        ),
        "zones": sorted(
            z["Id"] for z in _client(box, "route53").list_hosted_zones()["HostedZones"]
        ),
        "alarms": sorted(
            a["AlarmName"] for a in _client(box, "cloudwatch").describe_alarms()["MetricAlarms"]
        ),
    }


def test_seeding_twice_changes_nothing(clean: Sandbox) -> None:
    first = clean.seed(_spec())
    assert first["created"]
    before = _inventory(clean)
    # a test (or a person) sets an alarm off; seeding again must not hide it
    _client(clean, "cloudwatch").set_alarm_state(
        AlarmName="web-5xx", StateValue="ALARM", StateReason="5xx rate 12%"
    )
    second = clean.seed(_spec())
    assert second["created"] == []
    assert {k: v for k, v in second.items() if k not in ("created", "substituted")} == {
        k: v for k, v in first.items() if k not in ("created", "substituted")
    }
    assert _inventory(clean) == before
    alarm = _client(clean, "cloudwatch").describe_alarms(AlarmNames=["web-5xx"])["MetricAlarms"][0]
    assert alarm["StateValue"] == "ALARM"


def test_a_grown_spec_adds_only_what_is_new(clean: Sandbox) -> None:
    clean.seed(_spec())
    grown = {
        "apiVersion": "immutable-sdk/v1",
        "name": "shop",
        "region": "us-east-1",
        "fleets": {
            "web": {
                "subnets": ["demo-private-a", "demo-private-d"],
                "load_balancer": {"target_groups": ["web-tg"]},
                "traffic": {
                    "slots": {
                        "blue": {"target_group": "web-tg"},
                        "green": {"target_group": "web-tg-2", "load_balancer": "web-tg"},
                    }
                },
            }
        },
    }
    summary = clean.seed(grown)
    assert [c.split(" (")[0] for c in summary["created"]] == [
        "subnet demo-private-d",
        "target group web-tg-2",
        "listener web-tg:80 forwards to 2 target groups",
    ]
    ec2, elbv2 = _client(clean, "ec2"), _client(clean, "elbv2")
    cidrs = [
        s["CidrBlock"]
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [summary["vpc"]]}])[
            "Subnets"
        ]
    ]
    assert len(cidrs) == len(set(cidrs))
    lb = elbv2.describe_load_balancers(Names=["web-tg"])["LoadBalancers"][0]
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    weights = {
        g["TargetGroupArn"].split("/")[1]: g["Weight"]
        for g in listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
    }
    assert weights == {"web-tg": 1, "web-tg-2": 0}


def test_a_spec_without_network_references_creates_no_vpc(clean: Sandbox) -> None:
    summary = clean.seed({"region": "us-east-1", "fleets": {"web": {"image": "web"}}})
    assert summary["vpc"] is None
    assert summary["created"] == []


def test_attach_reuses_a_served_sandbox_and_leaves_it_running(clean: Sandbox) -> None:
    attached = Sandbox.attach(clean.url + "/")
    assert attached.url == clean.url
    attached.seed(_spec())
    attached.stop()
    with urllib.request.urlopen(f"{clean.url}/moto-api/data.json", timeout=10) as response:
        assert response.status == 200
    assert _client(clean, "elbv2").describe_target_groups(Names=["web-tg"])["TargetGroups"]


def test_attach_refuses_anything_but_loopback() -> None:
    with pytest.raises(UsageError, match=r"must be on 127\.0\.0\.1"):
        Sandbox.attach("http://10.1.2.3:5000")


def test_sandbox_env_points_a_subprocess_at_the_sandbox() -> None:
    env = sandbox_env("http://127.0.0.1:5123", "eu-west-1")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5123"
    assert env["AWS_DEFAULT_REGION"] == env["AWS_REGION"] == "eu-west-1"
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"


def test_a_stopped_sandbox_refuses_connections() -> None:
    box = Sandbox().start()
    url = box.url
    box.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=5)


def test_alarms_a_strategy_analysis_watches_are_seeded_too() -> None:
    """A linear strategy's ``analysis`` and a canary step's ``analysis`` name alarms that no
    health check names: the sandbox must create them, or the analysis fails as missing."""
    from immutable_sdk.aws.seed import needs

    document = {
        "region": "us-east-1",
        "fleets": {
            "web": {"strategy": {"type": "linear", "analysis": {"alarms": ["web-5xx"]}}},
            "api": {
                "strategy": {
                    "type": "canary",
                    "steps": [{"weight": 10}, {"analysis": {"alarms": ["api-5xx", "api-p99"]}}],
                },
                "health": {"checks": [{"type": "cloudwatch-alarm", "alarms": ["api-5xx"]}]},
            },
        },
    }
    assert needs(document).alarms == ["web-5xx", "api-5xx", "api-p99"]
