"""A seeded emulator account with a fleet behind two traffic slots (blue, green)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.engine.conftest import AMI_V1, AMI_V2, World

__all__ = ["AMI_V1", "AMI_V2", "SlotWorld", "slot_spec"]

SLOT_SPEC = """
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
state: {{backend: local, path: state.db}}
images:
  web:
    builder: ami
    id: ${{WEB_AMI}}
fleets:
  checkout:
    image: web
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {{min: {desired}, desired: {desired}, max: {max}}}
    traffic:
      route53: {{zone: example.com., record: checkout.example.com, ttl: {ttl}}}
      slots:
        blue: {{target_group: checkout-blue, load_balancer: checkout-blue}}
        green: {{target_group: checkout-green, load_balancer: checkout-green}}
    strategy: {strategy}
    health:
      timeout: 5m
      interval: {interval}
      checks:
{checks}
    rollback: {{automatic: true}}
"""

ALARM_CHECKS = "        - {type: ec2}\n        - {type: cloudwatch-alarm, alarms: [checkout-5xx]}"


def slot_spec(
    strategy: str,
    *,
    desired: int = 4,
    ttl: int = 60,
    checks: str = ALARM_CHECKS,
    interval: str = "5m",
) -> str:
    return SLOT_SPEC.format(
        strategy=strategy,
        desired=desired,
        max=desired * 2,
        ttl=ttl,
        checks=checks,
        interval=interval,
    )


class SlotWorld(World):
    """World plus what traffic slots need: the record's weights and the slot groups."""

    def zone(self) -> str:
        zones = self.client("route53").list_hosted_zones_by_name(DNSName="example.com.")
        return str(zones["HostedZones"][0]["Id"]).split("/")[-1]

    def weights(self) -> dict[str, int]:
        out = self.client("route53").list_resource_record_sets(HostedZoneId=self.zone())
        return {
            r["SetIdentifier"]: int(r["Weight"])
            for r in out["ResourceRecordSets"]
            if r["Name"] == "checkout.example.com." and "SetIdentifier" in r
        }

    def slot(self, slot: str) -> dict[str, Any]:
        return self.group(f"shop-checkout-{slot}")

    def instances_of(self, slot: str) -> list[str]:
        return [i["InstanceId"] for i in self.slot(slot).get("Instances", [])]

    def state_of(self, ids: list[str]) -> set[str]:
        return {i["State"]["Name"] for i in self.instances(ids)}

    def dimensions(self, slot: str) -> list[dict[str, str]]:
        """The CloudWatch dimensions of a slot's target group (TargetGroup, LoadBalancer)."""
        elbv2 = self.client("elbv2")
        tg = elbv2.describe_target_groups(Names=[f"checkout-{slot}"])["TargetGroups"][0]
        lb = elbv2.describe_load_balancers(Names=[f"checkout-{slot}"])["LoadBalancers"][0]
        return [
            {"Name": "TargetGroup", "Value": tg["TargetGroupArn"].split(":")[-1]},
            {
                "Name": "LoadBalancer",
                "Value": lb["LoadBalancerArn"].split(":")[-1].removeprefix("loadbalancer/"),
            },
        ]

    def set_alarm(self, state: str, name: str = "checkout-5xx") -> None:
        self.client("cloudwatch").set_alarm_state(
            AlarmName=name, StateValue=state, StateReason=f"set by the test: {state}"
        )


@pytest.fixture
def slots(aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SlotWorld:
    return SlotWorld(aws, tmp_path, monkeypatch)
