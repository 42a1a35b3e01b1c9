"""Real fleets for orchestrator tests: a spec of rolling fleets gated by an ``http`` check
against a server the test controls (per fleet: 200, or what the test says), and views of what
AWS and the state hold afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tests.engine.conftest import AMI_V1, AMI_V2
from tests.ticks.test_slot_ticks import weights as record_weights

from immutable_sdk.core.engine import Engine
from immutable_sdk.core.orchestrator.execution import execution_input
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec
from immutable_sdk.testing.endpoints import HealthServer

from .conftest import Project

FLEET = """  {name}:
    image: app
    instance_type: t3.micro
    subnets: [orc-a]
    security_groups: [orc-web]
    capacity: {{min: 2, desired: 2, max: 4}}
    strategy: {{type: rolling, batch_size: 1, min_healthy: 100%, bake: {bake}}}
    health:
      timeout: 30s
      interval: 1s
      checks:
        - {{type: ec2}}
        - {{type: http, url: 'http://127.0.0.1:{port}/{name}/{{instance_id}}', failures: 1}}
    rollback: {{automatic: true}}
"""


# web and api, then jobs: a failure or an abort in the first wave keeps jobs untouched
TWO_WAVES = """waves:
  - {name: first, fleets: [web, api], bake: 0s}
  - {name: second, fleets: [jobs], bake: 0s}
"""


def spec_text(ami: str, port: int, *, bakes: dict[str, str], waves: str) -> str:
    text = f"""apiVersion: immutable-sdk/v1
name: orc
region: us-east-1
state: {{backend: dynamodb, table: orc-state}}
images:
  app: {{builder: ami, id: {ami}}}
fleets:
"""
    for name, bake in bakes.items():
        text += FLEET.format(name=name, bake=bake, port=port)
    return text + waves


class Health:
    """Per fleet, what the test's health server answers (200 unless told otherwise)."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.server = HealthServer(lambda _instance: 200)
        outer = self

        handler = self.server.server.RequestHandlerClass

        def do_get(req: Any) -> None:
            fleet = req.path.strip("/").split("/")[0]
            code = outer.codes.get(fleet, 200)
            req.send_response(code)
            req.send_header("Content-Length", "0")
            req.end_headers()

        handler.do_GET = do_get  # type: ignore[attr-defined]

    @property
    def port(self) -> int:
        return int(self.server.port)


def serve_health() -> Iterator[Health]:
    """The ``health`` fixture's body: a health server for the test's duration."""
    h = Health()
    h.server.__enter__()
    yield h
    h.server.__exit__()


def fleet_view(project: Project, fleet: str) -> dict[str, Any]:
    """The fleet's group: its release tag, capacity, instances and their release tags."""
    asg = project.client("autoscaling")
    (group,) = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[f"orc-{fleet}"])[
        "AutoScalingGroups"
    ]
    ids = [i["InstanceId"] for i in group["Instances"]]
    ec2 = project.client("ec2")
    found = ec2.describe_instances(InstanceIds=ids)["Reservations"] if ids else []
    releases = sorted(
        {t["Key"]: t["Value"] for t in i.get("Tags", [])}.get("immutable-sdk:release", "?")
        for r in found
        for i in r["Instances"]
    )
    versions = ec2.describe_launch_template_versions(LaunchTemplateName=f"orc-{fleet}")[
        "LaunchTemplateVersions"
    ]
    return {
        "release": {t["Key"]: t["Value"] for t in group["Tags"]}.get("immutable-sdk:release"),
        "desired": group["DesiredCapacity"],
        "instances": sorted(ids),
        "instance_releases": releases,
        "versions": sorted(v["VersionNumber"] for v in versions),
    }


def running_instances(project: Project) -> set[str]:
    out = project.client("ec2").describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )
    return {i["InstanceId"] for r in out["Reservations"] for i in r["Instances"]}


def leftovers(project: Project) -> list[str]:
    """Unfinished rollouts and held locks, as ``status`` reports them."""
    status = project.cli("status", "-f", str(project.spec), "-o", "json")
    assert status.exit_code in (0, 1), status.output
    fleets = json.loads(status.stdout)["fleets"]
    return [
        f"{f['fleet']}: {what}"
        for f in fleets
        for what in ("rollout_in_progress", "lock")
        if f.get(what)
    ]


def rolled_out(project: Project, health: Health, bakes: dict[str, str], waves: str) -> None:
    """The fleets created on release 1 (AMI_V1) by a local apply (no bakes: a creation bakes
    too), then AMI_V2 and ``bakes`` in the spec."""
    unbaked = dict.fromkeys(bakes, "0s")
    project.write(spec_text(AMI_V1, health.port, bakes=unbaked, waves=waves), {})
    Sandbox.attach(project.url).seed(load_spec([project.spec]))
    project.install("--heartbeat", "10s")
    created = project.cli("apply", "-f", str(project.spec), "--yes", "-o", "json")
    assert created.exit_code == 0, created.output
    project.write(spec_text(AMI_V2, health.port, bakes=bakes, waves=waves), {})


def start_planned(project: Project, *, poll_seconds: int) -> str:
    """Start an execution of the spec's plan, as ``apply --on step-functions`` does, asking
    again every ``poll_seconds`` after a unit waits (a lock, a manual pause)."""
    spec = load_spec([project.spec])
    with Engine(spec, endpoint_url=project.url) as engine:
        plan = engine.plan()
    run = execution_input(spec, plan, poll_seconds=poll_seconds)
    machine = project.aws.find_state_machine(f"immutable-sdk-{spec.name}")
    assert machine is not None
    arn, started = project.aws.start_execution(machine, run.name, run.to_json())
    assert started
    return arn


SLOT_FLEET = """apiVersion: immutable-sdk/v1
name: orc
region: us-east-1
state: {{backend: dynamodb, table: orc-state}}
images:
  app: {{builder: ami, id: {ami}}}
fleets:
  checkout:
    image: app
    instance_type: t3.micro
    subnets: [orc-a]
    security_groups: [orc-web]
    capacity: {{min: 2, desired: 2, max: 4}}
    traffic:
      route53: {{zone: example.com., record: checkout.example.com, ttl: 2}}
      slots:
        blue: {{target_group: checkout-blue, load_balancer: checkout-blue}}
        green: {{target_group: checkout-green, load_balancer: checkout-green}}
    strategy: {strategy}
    health:
      timeout: 30s
      interval: 1s
      checks:
        - {{type: ec2}}
        - {{type: cloudwatch-alarm, alarms: [checkout-5xx]}}
    rollback: {{automatic: true}}
"""


def slots_rolled_out(project: Project, strategy: str) -> None:
    """A canary or blue/green fleet ``checkout`` created on AMI_V1 (all traffic on blue) by a
    local apply, then AMI_V2 in the spec."""
    project.write(SLOT_FLEET.format(ami=AMI_V1, strategy=strategy), {})
    Sandbox.attach(project.url).seed(load_spec([project.spec]))
    elbv2 = project.client("elbv2")  # moto drains at once; keep AWS's 300 s out anyway
    for tg in elbv2.describe_target_groups()["TargetGroups"]:
        elbv2.modify_target_group_attributes(
            TargetGroupArn=tg["TargetGroupArn"],
            Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "0"}],
        )
    project.install("--heartbeat", "10s")
    created = project.cli("apply", "-f", str(project.spec), "--yes", "-o", "json")
    assert created.exit_code == 0, created.output
    assert weights(project) == {"blue": 100, "green": 0}
    project.write(SLOT_FLEET.format(ami=AMI_V2, strategy=strategy), {})


def weights(project: Project) -> dict[str, int]:
    """checkout.example.com's weight per slot."""
    return record_weights(project.url)


def slot_instances(project: Project) -> dict[str, list[str]]:
    asg = project.client("autoscaling")
    out = {}
    for slot in ("blue", "green"):
        name = f"orc-checkout-{slot}"
        found = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
        out[slot] = sorted(i["InstanceId"] for i in found[0]["Instances"]) if found else []
    return out
