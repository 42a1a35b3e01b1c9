"""Resolving a spec's subnets, security groups and target groups against the moto server."""

from __future__ import annotations

from typing import Any

import pytest

from immutable_sdk.aws.network import (
    FILTER_VALUES,
    NetworkIds,
    resolve_security_groups,
    resolve_subnets,
    resolve_target_groups,
)
from immutable_sdk.aws.session import AwsSession
from immutable_sdk.errors import AwsError


@pytest.fixture
def session(aws: str) -> AwsSession:
    return AwsSession("us-east-1", endpoint_url=aws)


@pytest.fixture
def vpc(session: AwsSession) -> str:
    vpc_id: str = session.client("ec2").create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    return vpc_id


def _subnet(ec2: Any, vpc: str, cidr: str, name: str | None = None) -> str:
    tags = [{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": name}]}] if name else []
    subnet_id: str = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, TagSpecifications=tags)["Subnet"][
        "SubnetId"
    ]
    return subnet_id


def test_subnets_resolve_by_id_and_name_in_order_with_batched_calls(
    session: AwsSession, vpc: str
) -> None:
    ec2 = session.client("ec2")
    a = _subnet(ec2, vpc, "10.0.1.0/24", "demo-private-a")
    b = _subnet(ec2, vpc, "10.0.2.0/24", "demo-private-b")
    c = _subnet(ec2, vpc, "10.0.3.0/24")
    before = session.calls.snapshot()

    assert resolve_subnets(ec2, ["demo-private-b", c, "demo-private-a", c]) == [b, c, a]
    # one describe for the ids, one for the names; not one per reference
    assert session.calls.since(before) == {"ec2.DescribeSubnets": 2}


def test_subnets_only_ids_take_one_call(session: AwsSession, vpc: str) -> None:
    ec2 = session.client("ec2")
    ids = [_subnet(ec2, vpc, f"10.0.{n}.0/24") for n in range(1, 5)]
    before = session.calls.snapshot()
    assert resolve_subnets(ec2, ids) == ids
    assert session.calls.since(before) == {"ec2.DescribeSubnets": 1}


def test_missing_subnets_are_all_named_in_one_error(session: AwsSession, vpc: str) -> None:
    ec2 = session.client("ec2")
    _subnet(ec2, vpc, "10.0.1.0/24", "demo-private-a")
    with pytest.raises(AwsError) as info:
        resolve_subnets(ec2, ["demo-private-a", "demo-private-z", "subnet-0123456789abcdef0"])
    message = str(info.value)
    assert "subnet 'demo-private-z' not found (by id or Name tag) in us-east-1" in message
    assert "subnet 'subnet-0123456789abcdef0' not found (by id or Name tag) in us-east-1" in message
    assert "demo-private-a" not in message
    assert info.value.code == "NotFound"


def test_id_like_reference_falls_back_to_the_name_tag(session: AwsSession, vpc: str) -> None:
    # The sandbox cannot create a subnet with a chosen id: it tags it with the spec's reference.
    ec2 = session.client("ec2")
    seeded = _subnet(ec2, vpc, "10.0.1.0/24", "subnet-aaa")
    assert resolve_subnets(ec2, ["subnet-aaa"]) == [seeded]


def test_a_name_carried_by_two_subnets_is_ambiguous(session: AwsSession, vpc: str) -> None:
    ec2 = session.client("ec2")
    one = _subnet(ec2, vpc, "10.0.1.0/24", "twin")
    two = _subnet(ec2, vpc, "10.0.2.0/24", "twin")
    with pytest.raises(AwsError, match="subnet 'twin' is ambiguous in us-east-1") as info:
        resolve_subnets(ec2, ["twin"])
    assert one in str(info.value) and two in str(info.value)
    assert "not found" not in str(info.value)


def test_security_groups_by_id_group_name_and_name_tag(session: AwsSession, vpc: str) -> None:
    ec2 = session.client("ec2")
    web = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    tagged = ec2.create_security_group(
        GroupName="db-0001",
        Description="db",
        VpcId=vpc,
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": "Name", "Value": "db"}]}
        ],
    )["GroupId"]
    before = session.calls.snapshot()
    assert resolve_security_groups(ec2, [tagged, "web", "db"]) == [tagged, web, tagged]
    assert session.calls.since(before) == {"ec2.DescribeSecurityGroups": 3}

    with pytest.raises(AwsError) as info:
        resolve_security_groups(ec2, ["web", "nope", "sg-0123456789abcdef0"])
    assert "security group 'nope' not found (by id, group name or Name tag) in us-east-1" in str(
        info.value
    )
    assert "'sg-0123456789abcdef0' not found" in str(info.value)


def test_the_default_group_name_is_ambiguous_across_vpcs(session: AwsSession, vpc: str) -> None:
    with pytest.raises(AwsError, match="security group 'default' is ambiguous"):
        resolve_security_groups(session.client("ec2"), ["default"])


def test_target_groups_by_arn_and_name(session: AwsSession, vpc: str) -> None:
    elbv2 = session.client("elbv2")

    def create(name: str) -> str:
        arn: str = elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc)[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        return arn

    web, api = create("web-tg"), create("api-tg")
    before = session.calls.snapshot()
    assert resolve_target_groups(elbv2, ["api-tg", web]) == [api, web]
    assert session.calls.since(before) == {"elbv2.DescribeTargetGroups": 2}
    before = session.calls.snapshot()
    assert resolve_target_groups(elbv2, ["api-tg", "web-tg"]) == [api, web]
    assert session.calls.since(before) == {"elbv2.DescribeTargetGroups": 1}


def test_missing_target_groups_are_named(session: AwsSession, vpc: str) -> None:
    elbv2 = session.client("elbv2")
    elbv2.create_target_group(Name="web-tg", Protocol="HTTP", Port=80, VpcId=vpc)
    gone = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gone/0123456789abcdef"
    with pytest.raises(AwsError) as info:
        resolve_target_groups(elbv2, ["web-tg", "checkout-blue", gone])
    message = str(info.value)
    assert "target group 'checkout-blue' not found (by ARN or name) in us-east-1" in message
    assert f"target group '{gone}' not found" in message
    assert "'web-tg'" not in message


def test_nothing_to_resolve_calls_nothing(session: AwsSession) -> None:
    assert resolve_subnets(session.client("ec2"), []) == []
    assert resolve_target_groups(session.client("elbv2"), []) == []
    assert session.calls.total == 0


def test_many_fleets_references_resolve_in_a_few_calls(session: AwsSession, vpc: str) -> None:
    """What plan does for all fleets at once: calls grow with AWS's filter size, not fleets."""
    ec2 = session.client("ec2")
    subnets = {f"net-{n}": _subnet(ec2, vpc, f"10.0.{n}.0/24", f"net-{n}") for n in range(3)}
    count = FILTER_VALUES + 50  # more names than one filter takes
    groups = {
        f"app-{n}": ec2.create_security_group(GroupName=f"app-{n}", Description="x", VpcId=vpc)[
            "GroupId"
        ]
        for n in range(count)
    }
    before = session.calls.snapshot()
    known = NetworkIds.resolve(
        ec2,
        session.client("elbv2"),
        subnets=[*subnets, *subnets],  # the same references named by many fleets
        security_groups=list(groups),
    )
    assert dict(known.subnets) == subnets and dict(known.security_groups) == groups
    # names that do not look like ids: one call per filter chunk and name filter
    assert session.calls.since(before) == {
        "ec2.DescribeSubnets": 1,
        "ec2.DescribeSecurityGroups": 2,
    }
    assert known.lookup(known.security_groups, ["app-2", "app-1", "app-2"]) == [
        groups["app-2"],
        groups["app-1"],
    ]
    assert known.lookup(known.subnets, ["net-0", "net-9"]) is None  # not resolved: ask AWS
