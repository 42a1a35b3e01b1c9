"""A two-wave, two-region plan with a wave bake, driven only by ``reconcile`` processes.

Wave ``one-box`` rolls the fleet in us-west-2 and bakes it 30 minutes; wave ``rest`` rolls
us-east-1 after. The bake is a journaled deadline on the west unit's rollout: the ticks in
between find the west unit up to date and still baking, and start nothing in the east until
the bake is over (the bug this fixes: a new process saw the wave done and skipped its bake).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import boto3
import pytest
from tests.engine.conftest import AMI_V1, AMI_V2
from tests.engine.crashkit import seed

from .tickkit import Ticker, waits

pytestmark = pytest.mark.slow

WEST = "us-west-2"
BAKE = 1800.0
SPEC = """\
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
state: {backend: local, path: state.db}
images:
  web:
    builder: ami
    ids:
      us-east-1: ${EAST_AMI}
      us-west-2: ${WEST_AMI}
fleets:
  web:
    image: web
    regions: [us-east-1, us-west-2]
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {min: 1, desired: 1, max: 2}
    strategy: {type: rolling, batch_size: 1}
    health:
      timeout: 5m
      interval: 10m
      checks:
        - {type: ec2}
waves:
  - {name: one-box, fleets: [web], regions: [us-west-2], bake: 30m}
  - {name: rest, fleets: ['*']}
"""


def amis(url: str, east_ami: str) -> dict[str, str]:
    ec2 = boto3.client("ec2", endpoint_url=url, region_name="us-east-1")
    (image,) = ec2.describe_images(ImageIds=[east_ami])["Images"]
    west = boto3.client("ec2", endpoint_url=url, region_name=WEST).describe_images(
        Owners=["amazon"], Filters=[{"Name": "name", "Values": [image["Name"]]}]
    )["Images"]
    return {"EAST_AMI": east_ami, "WEST_AMI": str(west[0]["ImageId"])}


def group_amis(url: str, region: str) -> set[str]:
    asg = boto3.client("autoscaling", endpoint_url=url, region_name=region)
    found = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["shop-web"])
    groups = found["AutoScalingGroups"]
    if not groups:
        return set()
    ids = [i["InstanceId"] for i in groups[0]["Instances"]]
    ec2 = boto3.client("ec2", endpoint_url=url, region_name=region)
    out = ec2.describe_instances(InstanceIds=ids)
    return {i["ImageId"] for r in out["Reservations"] for i in r["Instances"]}


def test_a_wave_bake_holds_the_next_wave_across_ticks(aws: str, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    v1, v2 = amis(aws, AMI_V1), amis(aws, AMI_V2)
    os.environ.update(v1)
    try:
        seed(aws, spec)
    finally:
        for key in v1:
            os.environ.pop(key)
    ticker = Ticker(aws, spec, env=dict(v1))
    created = ticker.until_settled("--yes")
    assert created.code == 0, created.data

    ticker.env.update(v2)
    ticker.advance_to(None, at_least=60)
    first = len(ticker.ticks)
    began = ticker.now
    east_started = None
    for _ in range(20):
        tick = ticker.tick("--yes")
        east = tick.unit("web")
        if east_started is None and east["outcome"] != "pending":
            east_started = tick.at
        if east_started is None:  # the west unit is rolled or baking: the east waits
            assert group_amis(aws, "us-east-1") == {v1["EAST_AMI"]}
        if tick.code != 10:
            break
        assert tick.next_at is not None
        ticker.advance_to(tick.next_at)
    assert tick.code == 0, tick.data
    assert "wave_bake" in waits(ticker.ticks[first:], f"web@{WEST}")
    assert east_started is not None and east_started - began >= BAKE
    assert group_amis(aws, WEST) == {v2["WEST_AMI"]}
    assert group_amis(aws, "us-east-1") == {v2["EAST_AMI"]}
    again = ticker.tick("--yes")
    assert again.code == 0 and {u["state"] for u in again.data["units"].values()} == {"converged"}
    # the apply record: the plan's waves, each unit's outcome, each wave bake's deadline
    with sqlite3.connect(f"file:{tmp_path / 'state.db'}?mode=ro", uri=True) as con:
        rows = con.execute("SELECT data FROM applies ORDER BY updated_at DESC").fetchall()
    record = json.loads(rows[0][0])
    assert [w["name"] for w in record["waves"]] == ["one-box", "rest"]
    bake = record["wave_bakes"][f"web@{WEST}"]
    assert bake["done"] is True and bake["until"] - bake["since"] == BAKE
    assert set(record["units"]) == {"web", f"web@{WEST}"}
