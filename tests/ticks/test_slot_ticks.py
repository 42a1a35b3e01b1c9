"""Canary and blue/green rollouts driven only by ``reconcile`` from fresh processes.

The canary has a bake, an analysis window (a CloudWatch alarm watched for 10 minutes), a
manual pause that an operator ends with ``promote`` from another process, and keeps the
previous slot warm for an hour; the blue/green keeps its previous slot for an hour too. Each
tick is a new process on a virtual clock moved to the ``next_at`` the last tick returned.
The outcome is ``apply``'s: all traffic on the new slot, the previous slot's group and
instances gone, no unfinished rollout and no lock left.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import boto3
import pytest
from tests.engine.conftest import AMI_V1, AMI_V2
from tests.engine.crashkit import seed
from tests.slots.conftest import slot_spec

from .tickkit import Ticker, waits

pytestmark = pytest.mark.slow

CANARY = (
    "{type: canary, keep_previous: 1h, steps: [{weight: 10, bake: 10m}, "
    "{analysis: {type: cloudwatch-alarm, alarms: [checkout-5xx], duration: 10m}}, "
    "{weight: 50}, {pause: manual}, {weight: 100}]}"
)
BLUE_GREEN = "{type: blue-green, keep_previous: 1h}"


def weights(url: str) -> dict[str, int]:
    route53 = boto3.client("route53", endpoint_url=url, region_name="us-east-1")
    zones = route53.list_hosted_zones_by_name(DNSName="example.com.")["HostedZones"]
    zone = str(zones[0]["Id"]).split("/")[-1]
    records = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return {
        r["SetIdentifier"]: int(r["Weight"])
        for r in records
        if r["Name"] == "checkout.example.com." and "SetIdentifier" in r
    }


def slot_instances(url: str) -> dict[str, list[str]]:
    asg = boto3.client("autoscaling", endpoint_url=url, region_name="us-east-1")
    out = {}
    for slot in ("blue", "green"):
        groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[f"shop-checkout-{slot}"])
        found = groups["AutoScalingGroups"]
        out[slot] = [i["InstanceId"] for i in found[0]["Instances"]] if found else []
    return out


def running(url: str) -> set[str]:
    ec2 = boto3.client("ec2", endpoint_url=url, region_name="us-east-1")
    out = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )
    return {i["InstanceId"] for r in out["Reservations"] for i in r["Instances"]}


def leftovers(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        unfinished = con.execute("SELECT id FROM rollouts WHERE outcome IS NULL").fetchall()
        locks = con.execute("SELECT owner FROM locks").fetchall()
    return [f"unfinished {unfinished}"] * bool(unfinished) + [f"locks {locks}"] * bool(locks)


def first(aws: str, tmp_path: Path, strategy: str) -> Ticker:
    spec = tmp_path / "spec.yaml"
    spec.write_text(slot_spec(strategy, interval="5m"))
    ticker = Ticker(aws, spec, env={"WEB_AMI": AMI_V1})
    seed_env(aws, spec)
    created = ticker.until_settled("--yes")
    assert created.code == 0, created.data
    assert weights(aws) == {"blue": 100, "green": 0}
    ticker.env["WEB_AMI"] = AMI_V2
    ticker.advance_to(None, at_least=60)
    return ticker


def seed_env(aws: str, spec: Path) -> None:
    import os

    os.environ["WEB_AMI"] = AMI_V1
    try:
        seed(aws, spec)
    finally:
        del os.environ["WEB_AMI"]


def test_a_canary_with_analysis_a_manual_pause_and_promote_advances_tick_by_tick(
    aws: str, tmp_path: Path
) -> None:
    ticker = first(aws, tmp_path, CANARY)
    blue = slot_instances(aws)["blue"]
    start = len(ticker.ticks)
    paused = ticker.until_settled("--yes")
    assert paused.code == 11, paused.data
    unit = paused.unit("checkout")
    assert (unit["state"], unit["waiting_for"]) == ("waiting_for_operator", "operator")
    assert weights(aws) == {"blue": 50, "green": 50}
    seen = waits(ticker.ticks[start:], "checkout")
    assert "bake" in seen and "analysis" in seen, seen
    rollout = unit["rollout"]

    again = ticker.tick()  # nobody promoted: still waiting, nothing moved
    assert again.code == 11 and weights(aws) == {"blue": 50, "green": 50}

    promoted = ticker.run("promote", "--fleet", "checkout")  # another process, an operator
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    done = ticker.until_settled()  # no --yes needed: the rollout was started already
    assert done.code == 0, done.data
    assert done.unit("checkout")["rollout"] == rollout  # one rollout, never restarted
    assert "keep_previous" in waits(ticker.ticks[start:], "checkout")
    assert weights(aws) == {"blue": 0, "green": 100}
    slots = slot_instances(aws)
    assert slots["blue"] == [] and len(slots["green"]) == 4
    assert running(aws) == set(slots["green"]) and not set(blue) & running(aws)
    assert leftovers(tmp_path / "state.db") == []


def test_a_blue_green_keeps_its_previous_slot_an_hour_across_ticks(
    aws: str, tmp_path: Path
) -> None:
    ticker = first(aws, tmp_path, BLUE_GREEN)
    start = len(ticker.ticks)
    began = ticker.now
    done = ticker.until_settled("--yes")
    assert done.code == 0, done.data
    seen = waits(ticker.ticks[start:], "checkout")
    assert "keep_previous" in seen, seen
    assert ticker.now - began >= 3600
    # while it was kept, the previous slot was still there: a tick saw traffic all on green
    assert weights(aws) == {"blue": 0, "green": 100}
    slots = slot_instances(aws)
    assert slots["blue"] == [] and len(slots["green"]) == 4
    assert running(aws) == set(slots["green"])
    assert leftovers(tmp_path / "state.db") == []


def test_a_canary_that_fails_in_a_tick_rolls_back_over_the_next_ticks(
    aws: str, tmp_path: Path
) -> None:
    ticker = first(aws, tmp_path, "{type: canary, steps: [{weight: 20, bake: 10m}, {weight: 100}]}")
    blue = slot_instances(aws)["blue"]
    baking = ticker.tick("--yes")
    assert (baking.code, baking.unit("checkout")["waiting_for"]) == (10, "bake"), baking.data
    assert weights(aws) == {"blue": 80, "green": 20}
    cloudwatch = boto3.client("cloudwatch", endpoint_url=aws, region_name="us-east-1")
    cloudwatch.set_alarm_state(AlarmName="checkout-5xx", StateValue="ALARM", StateReason="test")
    assert baking.next_at is not None
    ticker.advance_to(baking.next_at)
    failed = ticker.tick()  # the bake's look fails: traffic back, then the TTL before retiring
    unit = failed.unit("checkout")
    assert failed.code == 1 and unit["state"] == "failed", failed.data
    assert unit["outcome"] == "rolling_back" and unit["waiting_for"] == "ttl"
    assert weights(aws) == {"blue": 100, "green": 0}
    assert failed.next_at is not None
    ticker.advance_to(failed.next_at)
    back = ticker.tick()
    assert back.code == 1 and back.unit("checkout")["outcome"] == "rolled_back", back.data
    assert slot_instances(aws) == {"blue": blue, "green": []}
    assert running(aws) == set(blue)
    assert leftovers(tmp_path / "state.db") == []
