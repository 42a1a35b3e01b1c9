"""``iam-policy``: the actions rollouts actually call are exactly those the policy allows.

The engine tests' scenarios run on the emulator with the API call counter (a failed create
rolled back, create, a failed replace rolled back, replace, manual rollback, scale, drift fixed,
recycle, destroy; DynamoDB state): every called action must be allowed, and every allowed
action must have been called or be listed, with its reason, in ``iam.UNOBSERVED``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3
import botocore.session
import pytest
from click.testing import CliRunner

from immutable_sdk.aws.session import AwsSession
from immutable_sdk.cli import main
from immutable_sdk.clock import VirtualClock
from immutable_sdk.engine import Engine
from immutable_sdk.iam import UNOBSERVED, actions_of, allowed_actions, policy_document
from immutable_sdk.plugins import load_plugins
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec
from immutable_sdk.state.dynamodb import DynamoDbStateStore
from immutable_sdk.state.dynamodb_table import create_table

from .conftest import AMI_V1, AMI_V2, World, fleet_spec

STATE = "state: {backend: dynamodb, table: shop-state}\n"


class Calls:
    """The union of the operations counted by every engine of the test."""

    def __init__(self) -> None:
        self.operations: set[str] = set()

    def engine(self, world: World, ami: str) -> Engine:
        engine = world.engine(ami)
        self.sessions = [*getattr(self, "sessions", []), engine.session]
        return engine

    def collect(self) -> set[str]:
        for session in self.sessions:
            self.operations |= set(session.calls.snapshot())
        return self.operations


def checks(port: int) -> str:
    return (
        "        - {type: ec2}\n"
        "        - {type: elb}\n"
        "        - {type: cloudwatch-alarm, alarms: [shop-5xx]}\n"
        f"        - {{type: http, url: 'http://127.0.0.1:{port}/health/{{instance_id}}',"
        " successes: 1, failures: 1}"
    )


def run_the_scenarios(world: World, health_server: Callable[..., Any]) -> set[str]:
    ec2, asg, elbv2 = world.client("ec2"), world.client("autoscaling"), world.client("elbv2")
    broken: set[str] = set()  # AMIs whose instances answer 500

    def answer(instance_id: str) -> int:
        (r,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return 500 if r["Instances"][0]["ImageId"] in broken else 200

    server = health_server(answer)
    world.clock = VirtualClock(start=time.time())  # instances carry real launch times
    spec = fleet_spec(desired=2, checks=checks(server.port)) + "    max_lifetime: 7d\n"
    world.write(spec)
    calls = Calls()

    broken.add(AMI_V1)  # a first rollout that fails: the new group is removed
    with calls.engine(world, AMI_V1) as engine:
        assert engine.apply().fleet("web").outcome == "rolled_back"
    broken.clear()
    with calls.engine(world, AMI_V1) as engine:
        assert engine.apply().ok
    broken.add(AMI_V2)  # a replacement that fails: back to the previous release
    with calls.engine(world, AMI_V2) as engine:
        assert engine.apply().fleet("web").outcome == "rolled_back"
    broken.clear()
    with calls.engine(world, AMI_V2) as engine:
        assert engine.apply().ok
        assert engine.rollback("web").outcome == "promoted"
    world.write(spec.replace("desired: 2", "desired: 3"))
    with calls.engine(world, AMI_V1) as engine:
        assert engine.apply().fleet("web").outcome == "scaled"

    # drift of every fixable kind, then --fix
    group = world.group()
    vpc = ec2.describe_subnets(SubnetIds=[group["VPCZoneIdentifier"].split(",")[0]])
    other = elbv2.create_target_group(
        Name="other", Protocol="HTTP", Port=80, VpcId=vpc["Subnets"][0]["VpcId"]
    )["TargetGroups"][0]["TargetGroupArn"]
    name = "shop-web"
    asg.detach_load_balancer_target_groups(
        AutoScalingGroupName=name, TargetGroupARNs=group["TargetGroupARNs"]
    )
    asg.attach_load_balancer_target_groups(AutoScalingGroupName=name, TargetGroupARNs=[other])
    asg.update_auto_scaling_group(AutoScalingGroupName=name, HealthCheckType="EC2")
    ec2.create_launch_template_version(
        LaunchTemplateName=name, LaunchTemplateData={"InstanceType": "t3.large"}
    )
    stray = ec2.run_instances(ImageId=AMI_V2, MinCount=1, MaxCount=1, InstanceType="t3.micro")
    asg.attach_instances(
        AutoScalingGroupName=name, InstanceIds=[stray["Instances"][0]["InstanceId"]]
    )
    with calls.engine(world, AMI_V1) as engine:
        fixed = engine.drift(fix=True)
    assert fixed.remaining == [], fixed.to_dict()

    world.clock = VirtualClock(start=world.clock.now() + 30 * 86_400)  # everything is old
    with calls.engine(world, AMI_V1) as engine:
        (recycled,) = engine.recycle()
    assert recycled.ok and recycled.rollout and len(recycled.rollout.retired) == 3

    world.write(spec.split("fleets:")[0] + "fleets: {}\n")  # the spec drops the fleet
    with calls.engine(world, AMI_V1) as engine:
        assert engine.apply(prune=True).fleets[0].outcome == "destroyed"
    return calls.collect()


def run_on_dynamodb_state(world: World) -> set[str]:
    """Create and replace a fleet whose state is a DynamoDB table; the operations called."""
    world.write(fleet_spec(desired=1).replace("images:", STATE + "images:", 1))
    dynamodb = boto3.client("dynamodb", endpoint_url=world.url, region_name="us-east-1")
    create_table(dynamodb, "shop-state")  # `state init`, not part of applying
    session = AwsSession("us-east-1", endpoint_url=world.url)
    for ami in (AMI_V1, AMI_V2):
        world.monkeypatch.setenv("WEB_AMI", ami)
        plugins = load_plugins(autoload=False)
        spec = load_spec([world.spec_path], plugins=plugins)
        Sandbox.attach(world.url).seed(spec)
        store = DynamoDbStateStore(session.client("dynamodb"), "shop-state", spec.name)
        with Engine(spec, plugins=plugins, session=session, clock=world.clock, state=store) as e:
            assert e.apply().ok
            e.status()
            e.history()
    return set(session.calls.snapshot())


@pytest.mark.slow
def test_the_policy_allows_exactly_what_rollouts_call(
    world: World, health_server: Callable[..., Any]
) -> None:
    called_ops = run_the_scenarios(world, health_server)
    world.clock = VirtualClock()
    called_ops |= run_on_dynamodb_state(world)
    called = {a for op in called_ops for a in actions_of(op)}

    # the policy of the scenarios' spec, with the DynamoDB state of the second part
    text = fleet_spec(desired=2, checks=checks(1)) + "    max_lifetime: 7d\n"
    world.write(text.replace("images:", STATE + "images:", 1))
    spec = load_spec([world.spec_path], plugins=load_plugins(autoload=False))
    allowed = allowed_actions(policy_document(spec))

    assert called - allowed == set(), "called but not allowed"
    unexplained = allowed - called - set(UNOBSERVED)
    assert unexplained == set(), "allowed but never called, with no reason given"
    assert {"ec2:RunInstances", "ec2:CreateTags"} <= allowed - called  # the documented ones
    assert all(UNOBSERVED[a] for a in allowed - called)


def test_every_action_names_a_real_operation_and_mutations_are_scoped(world: World) -> None:
    world.write(fleet_spec(desired=2) + "    iam_instance_profile: web\n")
    spec = load_spec([world.spec_path], plugins=load_plugins(autoload=False))
    document = policy_document(spec, account="123456789012", images_gc=True)
    session = botocore.session.get_session()
    services = {"elasticloadbalancing": "elbv2"}
    for action in allowed_actions(document):
        prefix, name = action.split(":")
        if prefix == "iam":
            assert name == "PassRole"
            continue
        model = session.get_service_model(services.get(prefix, prefix))
        assert name in model.operation_names, action
    for statement in document["Statement"]:
        actions = statement["Action"]
        mutating = [
            a for a in actions if not a.split(":")[1].startswith(("Describe", "Get", "List"))
        ]
        if not mutating:
            assert statement["Resource"] == "*"
            continue
        # every mutating statement is scoped: by tag condition, by resource name or both
        resources = statement["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        assert "Condition" in statement or all(r != "*" for r in resources), statement
        for r in resources:
            assert r == "*" or ":123456789012:" in r or ":::" in r or "::image" in r, r
    sids = {s["Sid"]: s for s in document["Statement"]}
    assert sids["Groups"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/immutable-sdk:project": "shop"}
    }
    assert sids["CreateGroups"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/immutable-sdk:project": "shop"}
    }
    assert sids["Groups"]["Resource"] == (
        "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:*:autoScalingGroupName/shop-*"
    )
    assert sids["DeregisterTargets"]["Resource"] == (
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-web/*"
    )
    assert "PassInstanceRole" in sids and "ImagesGc" in sids
    assert "State" not in sids and "Packer" not in sids  # local state, ami builder


SPEC_WITH_EVERYTHING = """
apiVersion: immutable-sdk/v1
name: shop
region: eu-west-1
state: {backend: dynamodb, table: shop-state, region: us-east-1}
images:
  web: {builder: packer, template: web.pkr.hcl, regions: [us-east-2]}
  batch:
    builder: ec2-image-builder
    pipeline: "arn:aws:imagebuilder:eu-west-1:123456789012:image-pipeline/batch"
fleets:
  web:
    image: web
    instance_type: t3.micro
    capacity: {min: 1, max: 2}
  batch:
    image: batch
    instance_type: t3.micro
    capacity: {min: 1, max: 2}
  checkout:
    image: web
    instance_type: t3.micro
    capacity: {min: 1, max: 2}
    traffic:
      route53: {zone: example.com., record: Checkout.Example.com}
      slots:
        blue: {target_group: checkout-blue}
        green: {target_group: checkout-green}
    strategy: {type: blue-green}
  api:
    image: web
    instance_type: t3.micro
    capacity: {min: 1, max: 2}
    traffic:
      route53: {zone: Z2FDTNDATAQYW2, record: api.example.com.}
      slots:
        blue: {target_group: api-blue}
        green: {target_group: api-green}
    strategy: {type: blue-green}
"""


def test_builders_state_and_route53_zones(tmp_path: Any) -> None:
    (tmp_path / "web.pkr.hcl").write_text("")
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC_WITH_EVERYTHING)
    result = CliRunner().invoke(main, ["iam-policy", "-f", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    sids = {s["Sid"]: s for s in document["Statement"]}
    assert set(sids["Packer"]["Action"]) >= {"ec2:CreateImage", "ec2:RegisterImage"}
    assert sids["CopyImages"]["Action"] == ["ec2:CopyImage"]  # web goes to a second region
    assert sids["ImageBuilderPipelines"]["Resource"] == (
        "arn:aws:imagebuilder:eu-west-1:123456789012:image-pipeline/batch"
    )
    assert sids["State"]["Resource"] == "arn:aws:dynamodb:us-east-1:*:table/shop-state"
    names = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
    assert sids["Route53Zone1"] == {
        "Sid": "Route53Zone1",
        "Effect": "Allow",
        "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
        "Resource": "arn:aws:route53:::hostedzone/Z2FDTNDATAQYW2",
        "Condition": {"ForAllValues:StringEquals": {names: ["api.example.com"]}},
    }
    by_name = sids["Route53ZonesByName"]
    assert by_name["Resource"] == "arn:aws:route53:::hostedzone/*"
    assert by_name["Condition"] == {"ForAllValues:StringEquals": {names: ["checkout.example.com"]}}
    assert set(sids["DeregisterTargets"]["Resource"]) == {
        f"arn:aws:elasticloadbalancing:eu-west-1:*:targetgroup/{tg}/*"
        for tg in ("api-blue", "api-green", "checkout-blue", "checkout-green")
    }
