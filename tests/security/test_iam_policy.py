"""``iam-policy``: the actions rollouts actually call are exactly those the policy allows.

The engine tests' scenarios run on the emulator with the API call counter (a failed create
rolled back, create, a failed replace rolled back, replace, manual rollback, scale, drift fixed,
recycle, destroy; DynamoDB state): every called action must be allowed, and every allowed
action must have been called or be listed, with its reason, in ``iam.UNOBSERVED``.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from click.testing import CliRunner

from immutable_sdk.aws.session import AwsSession
from immutable_sdk.cli import main
from immutable_sdk.clock import VirtualClock
from immutable_sdk.core.engine import Engine
from immutable_sdk.core.iam.policy import (
    UNOBSERVED,
    actions_of,
    allowed_actions,
    policy_document,
)
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
        assert engine.apply(retry_failed=True).ok  # the failed release is quarantined
    broken.add(AMI_V2)  # a replacement that fails: back to the previous release
    with calls.engine(world, AMI_V2) as engine:
        assert engine.apply().fleet("web").outcome == "rolled_back"
    broken.clear()
    with calls.engine(world, AMI_V2) as engine:
        assert engine.apply(retry_failed=True).ok
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
            assert (
                r == "*"
                or ":123456789012:" in r
                or ":::" in r
                or "::image/" in r
                or ("::snapshot/" in r)
            ), r
    sids = {s["Sid"]: s for s in document["Statement"]}
    assert sids["Groups"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/immutable-sdk:project": "shop"}
    }
    assert sids["CreateGroups"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/immutable-sdk:project": "shop"}
    }
    assert sids["Groups"]["Resource"] == (  # which groups: the project's tag says
        "arn:aws:autoscaling:*:123456789012:autoScalingGroup:*:autoScalingGroupName/*"
    )
    assert sids["CreateGroups"]["Resource"] == (  # a create cannot touch an existing group
        "arn:aws:autoscaling:*:123456789012:autoScalingGroup:*:autoScalingGroupName/shop-*"
    )
    assert sids["TerminateGroupInstances"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/aws:autoscaling:groupName": ["shop-web"]}
    }
    assert sids["DeregisterTargets"]["Resource"] == (
        "arn:aws:elasticloadbalancing:*:123456789012:targetgroup/shop-web/*"
    )
    # no condition of its own: limited to the spec's regions
    assert sids["DeregisterTargets"]["Condition"] == {
        "StringEquals": {"aws:RequestedRegion": ["us-east-1"]}
    }
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
    result = CliRunner().invoke(
        main, ["iam-policy", "-f", str(path), "-o", "json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    sids = {s["Sid"]: s for s in statements_of(json.loads(result.stdout))}
    assert "ec2:CreateImage" in sids["PackerImageFromInstance"]["Action"]
    assert "ec2:RegisterImage" in sids["PackerCreateImages"]["Action"]
    assert sids["CopyImages"]["Action"] == ["ec2:CopyImage"]  # web goes to a second region
    assert sids["ImageBuilderPipelines"]["Resource"] == (
        "arn:aws:imagebuilder:eu-west-1:123456789012:image-pipeline/batch"
    )
    assert sids["State"]["Resource"] == "arn:aws:dynamodb:us-east-1:*:table/shop-state"
    names = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
    # the names condition only on the action that carries the key, which Null requires:
    # ForAllValues alone is true when the key is absent
    assert sids["Route53Zone1"] == {
        "Sid": "Route53Zone1",
        "Effect": "Allow",
        "Action": ["route53:ChangeResourceRecordSets"],
        "Resource": "arn:aws:route53:::hostedzone/Z2FDTNDATAQYW2",
        "Condition": {
            "ForAllValues:StringEquals": {names: ["api.example.com"]},
            "Null": {names: "false"},
        },
    }
    by_name = sids["Route53ZonesByName"]
    assert by_name["Resource"] == "arn:aws:route53:::hostedzone/*"
    assert by_name["Condition"] == {
        "ForAllValues:StringEquals": {names: ["checkout.example.com"]},
        "Null": {names: "false"},
    }
    listing = sids["Route53ListRecords"]  # a read, without the key: no condition
    assert listing["Action"] == ["route53:ListResourceRecordSets"] and "Condition" not in listing
    assert listing["Resource"] == [
        "arn:aws:route53:::hostedzone/*",
        "arn:aws:route53:::hostedzone/Z2FDTNDATAQYW2",
    ]
    assert sids["Route53ChangeStatus"]["Resource"] == "arn:aws:route53:::change/*"
    assert set(sids["DeregisterTargets"]["Resource"]) == {
        f"arn:aws:elasticloadbalancing:*:*:targetgroup/{tg}/*"
        for tg in ("api-blue", "api-green", "checkout-blue", "checkout-green")
    }


# --- scoping: destructive statements, other projects, Packer --------------------------------

DESTRUCTIVE = (
    "Terminate",
    "Delete",
    "Deregister",
    "Modify",
    "Stop",
    "Detach",
    "Update",
    "Suspend",
    "Resume",
    "Authorize",
    "Attach",
    "Change",
    "Put",
    "CreateOrUpdateTags",
    "CreateTags",
)
RESOURCE_TAG_KEYS = ("aws:ResourceTag/", "ec2:ResourceTag/", "autoscaling:ResourceTag/")
READS = ("Describe", "Get", "List")


def statements_of(output: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of ``iam-policy -o json``'s policies."""
    return [s for p in output["policies"] for s in p["document"]["Statement"]]


def everything_policy(tmp_path: Any, **options: Any) -> dict[str, Any]:
    """The policy of SPEC_WITH_EVERYTHING, its Packer template the demo's."""
    demo = Path(__file__).resolve().parents[2] / "specs/examples/packer/web.pkr.hcl"
    (tmp_path / "web.pkr.hcl").write_text(demo.read_text())
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC_WITH_EVERYTHING)
    spec = load_spec([path], plugins=load_plugins(autoload=False))
    return policy_document(spec, account="123456789012", images_gc=True, **options)


def _list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value)


# conditions that say which resources: tags, the create call, record names, the service
SCOPING_KEYS = {
    "ec2:CreateAction",
    "route53:ChangeResourceRecordSetsNormalizedRecordNames",
    "iam:PassedToService",
}
TAG_KEYS = ("aws:ResourceTag/", "aws:RequestTag/")


def test_every_statement_with_destructive_actions_is_scoped(tmp_path: Any) -> None:
    document = everything_policy(tmp_path)
    for statement in document["Statement"]:
        destructive = [
            a for a in _list(statement["Action"]) if a.split(":")[1].startswith(DESTRUCTIVE)
        ]
        if not destructive:
            continue
        resources = _list(statement["Resource"])
        assert "*" not in resources, statement
        keys = {k for block in statement.get("Condition", {}).values() for k in block}
        if keys & SCOPING_KEYS or any(k.startswith(TAG_KEYS) for k in keys):
            continue
        # no scoping condition (a region is not one): every resource must be named (a bare
        # `kind/*` would be all of them)
        for arn in resources:
            resource = arn.split(":", 5)[5]
            assert resource.split("/", 1)[-1] not in ("*", ""), (statement["Sid"], arn)


def _matches(statement: dict[str, Any], action: str, arn: str, tags: dict[str, str]) -> bool:
    """Whether ``statement`` allows ``action`` on the existing resource ``arn`` with ``tags``,
    for a caller who chooses its request freely (request tags, record names)."""
    if action not in _list(statement["Action"]):
        return False
    if not any(fnmatch.fnmatchcase(arn, pattern) for pattern in _list(statement["Resource"])):
        return False
    for operator, conditions in statement.get("Condition", {}).items():
        for key, expected in conditions.items():
            wanted = _list(expected)
            if key == "ec2:CreateAction":
                return False  # only inside a create call: never on an existing resource
            if not key.startswith(RESOURCE_TAG_KEYS):
                continue  # the caller's request decides these
            value = tags.get(key.split("/", 1)[1])
            if operator == "StringEquals" and value not in wanted:
                return False
            if operator == "StringEqualsIfExists" and value is not None and value not in wanted:
                return False
            if operator == "StringLike" and (
                value is None or not any(fnmatch.fnmatchcase(value, w) for w in wanted)
            ):
                return False
            if operator == "Null" and (value is None) != (wanted == ["true"]):
                return False
    return True


# creations name the resource they create, not an existing one; RunInstances only uses
# images, subnets and templates
CREATES = {
    "ec2:RunInstances",
    "ec2:CreateImage",
    "ec2:CopyImage",
    "ec2:RegisterImage",
    "ec2:CreateSnapshot",
    "ec2:CreateVolume",
    "ec2:CreateLaunchTemplate",
    "ec2:CreateKeyPair",
    "ec2:CreateSecurityGroup",
    "autoscaling:CreateAutoScalingGroup",
}


def other_projects_resources() -> list[tuple[str, dict[str, str]]]:
    """Groups, instances, templates, AMIs and snapshots of projects `shop2` and `shop-eu`
    (whose names start like `shop`'s), in the spec's region."""
    out = []
    for project in ("shop2", "shop-eu"):
        group = f"{project}-web"
        tags = {"immutable-sdk:project": project}
        out += [
            (
                "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:"
                f"0f0e-42:autoScalingGroupName/{group}",
                tags,
            ),
            (
                "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0",
                {**tags, "aws:autoscaling:groupName": group},
            ),
            ("arn:aws:ec2:eu-west-1:123456789012:launch-template/lt-0123456789abcdef0", tags),
            ("arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0", tags),
            ("arn:aws:ec2:us-east-2::snapshot/snap-0123456789abcdef0", tags),
            ("arn:aws:ec2:eu-west-1:123456789012:volume/vol-0123456789abcdef0", tags),
            ("arn:aws:ec2:eu-west-1:123456789012:security-group/sg-0123456789abcdef0", tags),
        ]
    return out


def test_no_statement_reaches_another_project_s_resources(tmp_path: Any) -> None:
    document = everything_policy(tmp_path)
    reached = [
        (statement["Sid"], action, arn)
        for statement in document["Statement"]
        for action in _list(statement["Action"])
        if not action.split(":")[1].startswith(READS) and action not in CREATES
        for arn, tags in other_projects_resources()
        if _matches(statement, action, arn, tags)
    ]
    assert reached == []
    # and the project's own resources are reached: the evaluator is not blind
    own = {"immutable-sdk:project": "shop", "aws:autoscaling:groupName": "shop-web"}
    sids = {s["Sid"]: s for s in document["Statement"]}
    group = "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:1:autoScalingGroupName/"
    assert _matches(sids["Groups"], "autoscaling:DeleteAutoScalingGroup", group + "shop-web", own)
    assert _matches(
        sids["TerminateGroupInstances"],
        "ec2:TerminateInstances",
        "arn:aws:ec2:eu-west-1:123456789012:instance/i-1",
        {"aws:autoscaling:groupName": "shop-checkout-blue"},  # attached by hand: no SDK tags
    )
    assert sids["TerminateGroupInstances"]["Condition"]["StringEquals"] == {
        "aws:ResourceTag/aws:autoscaling:groupName": [
            "shop-api",
            "shop-api-blue",
            "shop-api-green",
            "shop-batch",
            "shop-checkout",
            "shop-checkout-blue",
            "shop-checkout-green",
            "shop-web",
        ]
    }


def test_packer_statements_are_scoped_by_the_project_tag(tmp_path: Any) -> None:
    sids = {s["Sid"]: s for s in everything_policy(tmp_path)["Statement"]}
    tagged = {"StringEquals": {"aws:ResourceTag/immutable-sdk:project": "shop"}}
    build = sids["PackerBuildInstance"]
    assert {"ec2:TerminateInstances", "ec2:StopInstances"} <= set(build["Action"])
    assert build["Condition"] == tagged
    own = sids["PackerChangeOwnImages"]
    # never Modify{Image,Snapshot}Attribute: they share AMIs and snapshots with any account
    assert set(own["Action"]) == {"ec2:DeleteSnapshot", "ec2:DeregisterImage"}
    assert own["Condition"] == tagged
    assert sids["PackerLaunchTagged"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/immutable-sdk:project": "shop"}
    }
    assert sids["PackerTemporaryKeyPairs"]["Resource"] == (
        "arn:aws:ec2:*:123456789012:key-pair/packer_*"
    )
    # no statement lets Packer change a security group unless asked: no condition tells its
    # untaggable temporary group from the account's others
    assert not {"PackerCreateSecurityGroup", "PackerTemporarySecurityGroup"} & set(sids)
    opted = {
        s["Sid"]: s
        for s in everything_policy(tmp_path, packer_temporary_security_group=True)["Statement"]
    }
    assert opted["PackerTemporarySecurityGroup"]["Condition"] == {
        "Null": {"aws:ResourceTag/immutable-sdk:project": "true"},
        "StringEquals": {"aws:RequestedRegion": ["eu-west-1"]},  # the build region
    }
    reads = sids["PackerReads"]
    assert reads["Resource"] == "*"
    assert all(a.split(":")[1].startswith(READS) for a in reads["Action"])


def test_iam_policy_says_what_a_packer_template_lacks(tmp_path: Any) -> None:
    everything_policy(tmp_path)  # writes the spec and the demo template
    spec = tmp_path / "spec.yaml"
    result = CliRunner().invoke(main, ["iam-policy", "-f", str(spec)], catch_exceptions=False)
    assert result.exit_code == 0
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "temporary security group" in notes[0]  # the demo's only gap

    template = tmp_path / "web.pkr.hcl"
    text = template.read_text().replace("  run_tags ", "  # run_tags ")
    template.write_text(
        text.replace(
            "  ami_name", '  security_group_id = "sg-1"\n  ami_description = "x"\n  ami_name'
        )
    )
    result = CliRunner().invoke(
        main, ["iam-policy", "-f", str(spec), "-o", "json"], catch_exceptions=False
    )
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert any("run_tags (the build instance) must carry the SDK's tags" in n for n in notes)
    assert any("ami_description" in n and "before it tags it" in n for n in notes)
    assert not any("temporary security group" in n for n in notes)
    output = json.loads(result.stdout)
    assert output["notes"] == [n.removeprefix("note: ") for n in notes]
    assert "PackerTemporarySecurityGroup" not in {s["Sid"] for s in statements_of(output)}


def _recorded_ec2_calls(url: str, agent: str) -> list[dict[str, str]]:
    """The EC2 Query API calls the emulator recorded from the client ``agent`` (in its
    User-Agent), in order, as flat parameter dicts."""
    with urllib.request.urlopen(f"{url}/moto-api/recorder/download-recording", timeout=30) as r:
        lines = r.read().decode().splitlines()
    calls = []
    for line in lines:
        entry = json.loads(line)
        if agent not in entry.get("headers", {}).get("User-Agent", ""):
            continue
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode()
        params = {k: v[0] for k, v in urllib.parse.parse_qs(str(body)).items()}
        if "Action" in params:
            calls.append(params)
    return calls


def _post(url: str) -> None:
    request = urllib.request.Request(url, method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


@pytest.mark.packer
@pytest.mark.skipif(shutil.which("packer") is None, reason="needs the packer binary")
def test_what_packer_calls_is_allowed_with_its_conditions(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real packer bakes the demo template on the emulator, every call recorded: each is
    in the policy, and each tag condition holds when the call is made."""
    from immutable_sdk.builders.packer import PackerBuilder
    from immutable_sdk.core.context import Context
    from immutable_sdk.spec.model import ImageSpec

    demo = Path(__file__).resolve().parents[2] / "specs/examples/packer"
    config = {"builder": "packer", "template": "web.pkr.hcl", "vars": {"app_version": "1.0.0"}}
    image = ImageSpec("web", "packer", config, ("us-east-1",), None, demo)
    ctx = Context("shop", "us-east-1", AwsSession("us-east-1", endpoint_url=aws), VirtualClock())
    monkeypatch.chdir(tmp_path)  # the emulator's recorder writes ./moto_recording
    _post(f"{aws}/moto-api/recorder/reset-recording")
    _post(f"{aws}/moto-api/recorder/start-recording")
    try:
        PackerBuilder(config).build(image, ctx)
    finally:
        _post(f"{aws}/moto-api/recorder/stop-recording")
    recorded = _recorded_ec2_calls(aws, "aws-sdk-go")  # packer's calls, not the SDK's boto3
    _post(f"{aws}/moto-api/recorder/reset-recording")
    packer_calls = [c for c in recorded if not c["Action"].startswith(READS)]

    (tmp_path / "packer").symlink_to(demo)
    (tmp_path / "boot.sh").write_text("#!/bin/sh\n")
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        fleet_spec(desired=1).replace(
            "    builder: ami\n    id: ${WEB_AMI}",
            "    builder: packer\n    template: packer/web.pkr.hcl\n    vars: {app_version: '1'}",
        )
    )
    spec = load_spec([spec_file], plugins=load_plugins(autoload=False))
    assert spec.images["web"].builder == "packer"
    allowed = allowed_actions(policy_document(spec, packer_temporary_security_group=True))
    assert {f"ec2:{c['Action']}" for c in packer_calls} <= allowed
    # without the option, only the calls on Packer's temporary security group are refused
    strict = allowed_actions(policy_document(spec))
    assert {f"ec2:{c['Action']}" for c in packer_calls} - strict == {
        "ec2:CreateSecurityGroup",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:DeleteSecurityGroup",
    }

    project = {"Key": "immutable-sdk:project", "Value": "shop"}
    tagged: set[str] = set()  # resources carrying the project's tag, as the calls go
    for call in packer_calls:
        action = call["Action"]
        if action == "RunInstances":
            specs = _tag_specifications(call)
            assert project in specs["instance"] and project in specs["volume"], specs
        elif action == "CreateTags":
            assert _tags(call, "Tag") and project in _tags(call, "Tag")
            tagged |= {v for k, v in call.items() if k.startswith("ResourceId.")}
        elif action in ("ModifyImageAttribute", "DeregisterImage"):
            assert call["ImageId"] in tagged, f"{action} of an AMI before it has the tag"
        elif action in ("DeleteSnapshot", "ModifySnapshotAttribute"):
            assert call["SnapshotId"] in tagged, f"{action} of a snapshot before it has the tag"
    assert any(c["Action"] == "TerminateInstances" for c in packer_calls)


def _tags(call: dict[str, str], prefix: str) -> list[dict[str, str]]:
    out = []
    n = 1
    while f"{prefix}.{n}.Key" in call:
        out.append({"Key": call[f"{prefix}.{n}.Key"], "Value": call.get(f"{prefix}.{n}.Value", "")})
        n += 1
    return out


def _tag_specifications(call: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    out = {}
    n = 1
    while f"TagSpecification.{n}.ResourceType" in call:
        kind = call[f"TagSpecification.{n}.ResourceType"]
        out[kind] = _tags(call, f"TagSpecification.{n}.Tag")
        n += 1
    return out
