"""Listing and garbage-collecting artifacts on the moto server, through the SDK and the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner, Result

from immutable_sdk.aws.session import AwsSession
from immutable_sdk.builders.lineage import iso_utc
from immutable_sdk.cli import main
from immutable_sdk.core.images.gc import collect, inventory, plan_collection
from immutable_sdk.plugin import (
    TAG_BUILDER,
    TAG_BUILT_AT,
    TAG_DIGEST,
    TAG_IMAGE,
    TAG_PROJECT,
    aws_error_code,
)
from immutable_sdk.spec.load import load_spec
from immutable_sdk.spec.model import Spec
from immutable_sdk.state import open_state
from immutable_sdk.state.base import RolloutRecord, StateStore
from immutable_sdk.testing import SpecWriter

DAY = 86400.0
NOW = 1_800_000_000.0

SPEC = """
    apiVersion: immutable-sdk/v1
    name: t
    region: us-east-1
    images:
      web:
        builder: packer
        template: web.pkr.hcl
        regions: [eu-west-1]
        retain: 1
      keepall:
        builder: packer
        template: web.pkr.hcl
    fleets:
      web:
        image: web
        instance_type: t3.micro
        capacity: {min: 1, desired: 1, max: 2}
"""


@pytest.fixture
def spec(aws: str, spec_writer: SpecWriter) -> Spec:
    return load_spec([spec_writer(SPEC, files={"web.pkr.hcl": 'variable "x" {}\n'})])


@pytest.fixture
def session(aws: str) -> AwsSession:
    return AwsSession("us-east-1", endpoint_url=aws)


@pytest.fixture
def state(spec: Spec) -> StateStore:
    store = open_state(spec.state, spec.name)
    yield store  # type: ignore[misc]
    store.close()


Bake = Callable[..., dict[str, str]]


@pytest.fixture
def bake(session: AwsSession) -> Bake:
    """An AMI (with its snapshot) tagged as an artifact built ``age`` seconds before ``now``."""

    def make(
        digest: str, age: float, image: str = "web", now: float = NOW, copy_to: str | None = None
    ) -> dict[str, str]:
        ec2 = session.client("ec2")
        instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)
        instance_id = instance["Instances"][0]["InstanceId"]
        tags = {
            TAG_PROJECT: "t",
            TAG_IMAGE: image,
            TAG_DIGEST: digest,
            TAG_BUILT_AT: iso_utc(now - age),
            TAG_BUILDER: "packer",
        }
        ami = ec2.create_image(
            InstanceId=instance_id,
            Name=f"{image}-{digest}",
            TagSpecifications=[
                {"ResourceType": "image", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            ],
        )["ImageId"]
        ec2.terminate_instances(InstanceIds=[instance_id])
        amis = {"us-east-1": ami}
        if copy_to:
            other = session.client("ec2", copy_to)
            copy = other.copy_image(SourceRegion="us-east-1", SourceImageId=ami, Name=f"c-{digest}")
            other.create_tags(
                Resources=[copy["ImageId"]], Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
            )
            amis[copy_to] = copy["ImageId"]
        return amis

    return make


def snapshots_of(session: AwsSession, region: str, ami: str) -> list[str]:
    image = session.client("ec2", region).describe_images(ImageIds=[ami])["Images"][0]
    return [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"]]


def exists(session: AwsSession, region: str, kind: str, resource_id: str) -> bool:
    ec2 = session.client("ec2", region)
    try:
        if kind == "image":
            return bool(ec2.describe_images(ImageIds=[resource_id])["Images"])
        return bool(ec2.describe_snapshots(SnapshotIds=[resource_id])["Snapshots"])
    except Exception as exc:
        assert aws_error_code(exc) in ("InvalidAMIID.NotFound", "InvalidSnapshot.NotFound")
        return False


def promote(state: StateStore, seq_amis: list[dict[str, str]]) -> None:
    """Record releases using ``seq_amis`` in order, each promoted over the one before."""
    previous = None
    for n, amis in enumerate(seq_amis, start=1):
        release = f"r{n}"
        state.record_release("web", release, {"amis": amis}, {}, NOW + n)
        state.start_rollout(
            RolloutRecord(
                id=f"ro{n}",
                fleet="web",
                strategy="rolling",
                from_release=previous,
                to_release=release,
                phase="promoted",
                started_at=NOW + n,
                finished_at=NOW + n,
                outcome="promoted",
            )
        )
        previous = release


def test_retain_one_keeps_current_and_previous_and_deletes_the_rest(
    spec: Spec, session: AwsSession, state: StateStore, bake: Bake
) -> None:
    a = bake("sha256:a", 40 * DAY)
    b = bake("sha256:b", 30 * DAY, copy_to="eu-west-1")
    c = bake("sha256:c", 20 * DAY)
    d = bake("sha256:d", 10 * DAY)
    other = bake("sha256:o", 50 * DAY, image="keepall")
    promote(state, [a, c, d])  # d current, c previous (rollback target), a older
    doomed = [("us-east-1", a["us-east-1"]), *b.items()]
    doomed_snapshots = [(r, s) for r, ami in doomed for s in snapshots_of(session, r, ami)]
    assert len(doomed_snapshots) == 3

    found = inventory(spec, session, state)
    assert [x.digest for x in found.of("web")] == ["sha256:d", "sha256:c", "sha256:b", "sha256:a"]
    assert found.of("web")[2].amis == b
    assert found.used_by(found.of("web")[0]) == ["web #3 (current)"]
    plans = plan_collection(spec, found, NOW, DAY)
    assert [(x.digest, why) for x, why in plans["web"].keep] == [
        ("sha256:d", "one of the 1 newest (retain)"),
        ("sha256:c", "used by fleet web release #2 (previous)"),
    ]
    assert [x.digest for x in plans["web"].delete] == ["sha256:b", "sha256:a"]
    assert plans["keepall"].delete == []

    dry = collect(spec, session, plans, dry_run=True)
    assert len(dry) == 2 and all(exists(session, r, "image", ami) for r, ami in doomed)

    collect(spec, session, plans, dry_run=False)

    assert not any(exists(session, r, "image", ami) for r, ami in doomed)
    assert not any(exists(session, r, "snapshot", s) for r, s in doomed_snapshots)
    for kept in (c, d, other):
        assert exists(session, "us-east-1", "image", kept["us-east-1"])


def test_what_groups_instances_and_youth_still_use_is_kept(
    spec: Spec, session: AwsSession, state: StateStore, bake: Bake
) -> None:
    a = bake("sha256:a", 40 * DAY)["us-east-1"]
    b = bake("sha256:b", 30 * DAY)["us-east-1"]
    c = bake("sha256:c", 20 * DAY)["us-east-1"]
    d = bake("sha256:d", 2 * 3600)["us-east-1"]
    bake("sha256:e", 3600)
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    template = ec2.create_launch_template(
        LaunchTemplateName="web-lt", LaunchTemplateData={"ImageId": b}
    )["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=template, LaunchTemplateData={"ImageId": c})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="t-web",
        LaunchTemplate={"LaunchTemplateId": template, "Version": "1"},
        MinSize=0,
        MaxSize=1,
        AvailabilityZones=["us-east-1a"],
        Tags=[{"Key": TAG_PROJECT, "Value": "t", "PropagateAtLaunch": True}],
    )
    ec2.run_instances(
        ImageId=a,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": TAG_PROJECT, "Value": "t"}]}
        ],
    )

    plans = plan_collection(spec, inventory(spec, session, state), NOW, DAY)

    kept = {x.amis["us-east-1"]: why for x, why in plans["web"].keep}
    assert kept[d] == "younger than the minimum age"
    assert kept[b] == "used by launch template web-lt version 1 (auto scaling group t-web)"
    assert kept[a].startswith("used by instance i-")
    assert [x.amis["us-east-1"] for x in plans["web"].delete] == [c]  # version 2 is unreferenced


def test_a_group_s_first_ami_is_not_kept_by_the_version_it_no_longer_uses(
    spec: Spec, session: AwsSession, state: StateStore, bake: Bake
) -> None:
    """The emulator reports every instance as launched from the template's default version
    (1): gc kept the fleet's first AMI, "used by launch template ... version 1", although the
    group had moved to version 2 and no instance ran the first AMI any more."""
    first = bake("sha256:a", 40 * DAY)["us-east-1"]
    second = bake("sha256:b", 30 * DAY)["us-east-1"]
    bake("sha256:c", 20 * DAY)
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    template = ec2.create_launch_template(
        LaunchTemplateName="web-lt", LaunchTemplateData={"ImageId": first}
    )["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(
        LaunchTemplateId=template, LaunchTemplateData={"ImageId": second}
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="t-web",
        LaunchTemplate={"LaunchTemplateId": template, "Version": "2"},
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=2,
        AvailabilityZones=["us-east-1a"],
        Tags=[{"Key": TAG_PROJECT, "Value": "t", "PropagateAtLaunch": True}],
    )
    members = autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"]
    assert {m["LaunchTemplate"]["Version"] for m in members} == {"1"}  # the emulator's quirk

    plans = plan_collection(spec, inventory(spec, session, state), NOW, DAY)

    kept = {x.amis["us-east-1"]: why for x, why in plans["web"].keep}
    assert kept[second] == "used by launch template web-lt version 2 (auto scaling group t-web)"
    assert first not in kept
    assert first in [x.amis["us-east-1"] for x in plans["web"].delete]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_the_images_commands(aws: str, spec: Spec, state: StateStore, bake: Bake) -> None:
    now = time.time()
    a = bake("sha256:" + "a" * 64, 3 * DAY, now=now)
    b = bake("sha256:" + "b" * 64, 2 * DAY, now=now)
    c = bake("sha256:" + "c" * 64, 1.5 * DAY, now=now)
    promote(state, [b, c])
    spec_file = str(spec.files[0])

    listed = run("--endpoint-url", aws, "images", "-f", spec_file)
    assert listed.exit_code == 0, listed.output
    assert "web (packer, retain 1): 3 artifact(s)" in listed.output
    assert "keepall (packer, retain all): 0 artifact(s)" in listed.output
    line = next(x for x in listed.output.splitlines() if x.strip().startswith("c" * 12))
    assert c["us-east-1"] in line and "web #2 (current)" in line

    as_json = json.loads(
        run("--endpoint-url", aws, "images", "list", "-f", spec_file, "-o", "json").output
    )
    web = next(i for i in as_json["images"] if i["image"] == "web")
    assert [x["used_by"] for x in web["artifacts"]] == [
        ["web #2 (current)"],
        ["web #1 (previous)"],
        [],
    ]

    dry = run("--endpoint-url", aws, "images", "gc", "-f", spec_file, "--dry-run")
    assert dry.exit_code == 0, dry.output
    before = run("--endpoint-url", aws, "images", "-f", spec_file, "gc", "--dry-run")
    assert before.exit_code == 0 and before.output == dry.output  # -f before the subcommand
    assert "web: keep 2, would delete 1" in dry.output and a["us-east-1"] in dry.output
    assert "keepall: keep 0, would delete 0" in dry.output

    young = run("--endpoint-url", aws, "images", "gc", "-f", spec_file, "--min-age", "4d")
    assert "web: keep 3, deleted 0" in young.output

    gone = run("--endpoint-url", aws, "images", "gc", "-f", spec_file, "-o", "json")
    assert gone.exit_code == 0, gone.output
    deleted = json.loads(gone.output)["images"]["web"]["delete"]
    assert [x["amis"]["us-east-1"] for x in deleted] == [a["us-east-1"]]
    assert deleted[0]["deleted"][0] == a["us-east-1"] and deleted[0]["deleted"][1].startswith(
        "snap-"
    )

    bad = CliRunner().invoke(main, ["images", "gc", "-f", spec_file, "--min-age", "soon"])
    assert bad.exit_code == 2 and "'--min-age': expected a duration" in bad.output
    missing = CliRunner().invoke(main, ["images"])
    assert missing.exit_code == 2 and "give the spec with -f SPEC" in missing.output
    missing = CliRunner().invoke(main, ["images", "gc"])
    assert missing.exit_code == 2 and "images gc: give the spec with -f SPEC" in missing.output
