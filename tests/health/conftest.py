"""Shared fixtures of the health check tests: a plugin context against the moto server."""

from __future__ import annotations

from typing import Any

import pytest

from immutable_sdk.aws.session import AwsSession
from immutable_sdk.clock import VirtualClock
from immutable_sdk.core.context import Context
from immutable_sdk.plugin import GateTargets, Target


@pytest.fixture
def ctx(aws: str) -> Context:
    return Context(
        project="t",
        region="us-east-1",
        session=AwsSession("us-east-1", endpoint_url=aws),
        clock=VirtualClock(),
    )


@pytest.fixture
def network(ctx: Context) -> dict[str, Any]:
    """A VPC with two subnets in two zones (what a load balancer needs)."""
    ec2 = ctx.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"us-east-1{z}")[
            "Subnet"
        ]["SubnetId"]
        for n, z in ((1, "a"), (2, "b"))
    ]
    return {"vpc": vpc, "subnets": subnets}


# Health checks do not care which image runs; moto launches any id, and listing its images
# costs a second per test.
AMI = "ami-12345678"


def launch(ctx: Context, subnet: str, count: int) -> list[str]:
    ec2 = ctx.client("ec2")
    reservation = ec2.run_instances(ImageId=AMI, MinCount=count, MaxCount=count, SubnetId=subnet)
    return [i["InstanceId"] for i in reservation["Instances"]]


def gate(instance_ids: list[str], target_groups: tuple[str, ...] = ()) -> GateTargets:
    return GateTargets(
        fleet="web",
        release="r1",
        instances=[Target(instance_id=i) for i in instance_ids],
        target_groups=target_groups,
    )


def calls(ctx: Context) -> dict[str, int]:
    return ctx.session.calls.snapshot()
