"""The SDK's own tick on Step Functions: workers run ``Engine.reconcile`` (issue 16) for real.

An execution of two waves creates every fleet, each group running the release the plan asked
for.
"""

from __future__ import annotations

import json

import pytest

from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec

from .conftest import Project, spec_text

pytestmark = pytest.mark.slow

FLEETS = ["web", "api", "jobs"]


def test_workers_run_the_reconcile_tick_to_the_plan_s_releases(project: Project) -> None:
    project.write(
        spec_text(FLEETS, [("front", ["web", "api"], "1s"), ("back", ["jobs"], "0s")]), {}
    )
    Sandbox.attach(project.url).seed(load_spec([project.spec]))
    project.install("--heartbeat", "10s")
    applied = project.cli(
        "apply", "-f", str(project.spec), "--yes", "--on", "step-functions", "-o", "json"
    )
    assert applied.exit_code == 0, applied.output
    arn = json.loads(applied.stdout)["execution_arn"]
    for _ in range(2):
        project.worker("--concurrency", "2", tick=None)
    done = project.wait_for(arn, timeout=180)
    assert done["status"] == "SUCCEEDED", (done.get("error"), done.get("cause"), project.logs())
    described = project.aws.describe_execution(arn)
    assert described is not None
    planned = {
        u["key"]: u["release"] for w in json.loads(described["input"])["waves"] for u in w["units"]
    }
    asg = project.client("autoscaling")
    for fleet in FLEETS:
        group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[f"orc-{fleet}"])
        (found,) = group["AutoScalingGroups"]
        tags = {t["Key"]: t["Value"] for t in found["Tags"]}
        assert tags["immutable-sdk:release"] == planned[fleet]
        assert len(found["Instances"]) == 1
    # a second plan has nothing to do: no execution is started
    again = project.cli(
        "apply", "-f", str(project.spec), "--yes", "--on", "step-functions", "-o", "json"
    )
    assert json.loads(again.stdout)["execution_arn"] is None, again.output
    assert project.stop_workers() == [0, 0]
