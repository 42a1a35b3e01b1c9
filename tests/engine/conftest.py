"""A seeded emulator account and an engine factory for rollout tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from immutable_sdk.clock import VirtualClock
from immutable_sdk.core.engine import Engine
from immutable_sdk.lifecycle import Event
from immutable_sdk.testing.testbed import SandboxAccount

# Two Amazon Linux AMIs that the emulator ships in us-east-1: "the old" and "the new" image.
AMI_V1 = "ami-03c3da4cfa8e8943a"
AMI_V2 = "ami-0d27e0fb3bac4d724"

FLEET_SPEC = """
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web:
    builder: ami
    id: ${{WEB_AMI}}
fleets:
  web:
    image: web
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    user_data: boot.sh
    capacity: {{min: {min}, desired: {desired}, max: {max}}}
    load_balancer: {{target_groups: [shop-web]}}
    strategy: {strategy}
    health:
      timeout: 5m
      interval: 5s
      checks:
{checks}
    rollback: {{automatic: true}}
"""


def fleet_spec(
    *,
    desired: int = 4,
    strategy: str = "{type: rolling, batch_size: 2, min_healthy: 100%}",
    checks: str = "        - {type: ec2}\n        - {type: elb}",
) -> str:
    return FLEET_SPEC.format(
        min=desired, desired=desired, max=desired * 2, strategy=strategy, checks=checks
    )


class World:
    """The emulator account, the spec on disk and a way to make engines for it."""

    def __init__(self, aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.url = aws
        self.tmp = tmp_path
        self.monkeypatch = monkeypatch
        self.clock = VirtualClock()
        self.events: list[Event] = []
        self.extra_plugins: list[Any] = []
        self.spec_path = tmp_path / "spec.yaml"

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1")

    def write(self, text: str, ami: str = AMI_V1) -> Path:
        (self.tmp / "boot.sh").write_text("#!/bin/sh\nsystemctl start shop.service\n")
        self.spec_path.write_text(text)
        self.monkeypatch.setenv("WEB_AMI", ami)
        return self.spec_path

    def engine(self, ami: str | None = None, **kwargs: Any) -> Engine:
        if ami:
            self.monkeypatch.setenv("WEB_AMI", ami)
        account = SandboxAccount(
            self.url, self.tmp, clock=self.clock, plugins=self.extra_plugins, events=self.events
        )
        return account.engine(self.spec_path, autoload=False, **kwargs)

    def group(self, name: str = "shop-web") -> dict[str, Any]:
        groups = self.client("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[name]
        )["AutoScalingGroups"]
        return groups[0] if groups else {}

    def instances(self, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        out = self.client("ec2").describe_instances(InstanceIds=ids)
        return [i for r in out["Reservations"] for i in r["Instances"]]

    def members(self) -> list[dict[str, Any]]:
        """The group's live instances as EC2 describes them (AMI, tags, state)."""
        ids = [i["InstanceId"] for i in self.group().get("Instances", [])]
        return self.instances(ids)

    def running(self, ami: str) -> list[str]:
        out = self.client("ec2").describe_instances(
            Filters=[
                {"Name": "image-id", "Values": [ami]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
        return [i["InstanceId"] for r in out["Reservations"] for i in r["Instances"]]

    def of_kind(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


@pytest.fixture
def world(aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(aws, tmp_path, monkeypatch)


def tag(instance: dict[str, Any], key: str) -> str | None:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}.get(key)
