"""``iam-policy`` for fleets in several regions: ARNs in any region, scoped by the project's tag
or, where a statement has no tag condition, by ``aws:RequestedRegion``."""

from __future__ import annotations

from pathlib import Path

from immutable_sdk.core.iam.policy import policy_document
from immutable_sdk.plugins import load_plugins
from immutable_sdk.spec.load import load_spec

SPEC = """
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web: {builder: packer, template: web.pkr.hcl}
fleets:
  web:
    image: web
    regions: [us-east-1, eu-west-1]
    instance_type: t3.micro
    capacity: {min: 1, max: 2}
    load_balancer: {target_groups: [shop-web]}
  api:
    image: web
    regions: [ap-south-1]
    instance_type: t3.micro
    capacity: {min: 1, max: 2}
"""


def test_every_region_a_fleet_deploys_to_is_covered(tmp_path: Path) -> None:
    (tmp_path / "web.pkr.hcl").write_text("")
    (tmp_path / "spec.yaml").write_text(SPEC)
    spec = load_spec([tmp_path / "spec.yaml"], plugins=load_plugins(autoload=False))
    document = policy_document(spec, account="1")
    sids = {s["Sid"]: s for s in document["Statement"]}
    regions = ["ap-south-1", "eu-west-1", "us-east-1"]
    group = "autoScalingGroup:*:autoScalingGroupName"
    # whose: the project's tag says, in whatever region
    assert sids["Groups"]["Resource"] == f"arn:aws:autoscaling:*:1:{group}/*"
    assert sids["CreateGroups"]["Resource"] == f"arn:aws:autoscaling:*:1:{group}/shop-*"
    assert sids["LaunchTemplateVersions"]["Resource"] == "arn:aws:ec2:*:1:launch-template/*"
    for statement in document["Statement"]:
        resources = statement["Resource"]
        for arn in [resources] if isinstance(resources, str) else resources:
            region = arn.split(":")[3] if arn.startswith("arn:") else "*"
            # no ARN names a region the spec does not use: the policy does not grow with them
            assert region in ("*", "", "us-east-1"), arn
        if statement["Sid"] in ("LaunchFromTemplate", "DeregisterTargets"):
            assert "Condition" in statement
    # a statement without a tag condition is limited to its regions: a target group is looked
    # for where its fleet runs, the launch where the fleets run
    assert sids["DeregisterTargets"] == {
        "Sid": "DeregisterTargets",
        "Effect": "Allow",
        "Action": ["elasticloadbalancing:DeregisterTargets"],
        "Resource": "arn:aws:elasticloadbalancing:*:1:targetgroup/shop-web/*",
        "Condition": {"StringEquals": {"aws:RequestedRegion": ["eu-west-1", "us-east-1"]}},
    }
    assert sids["LaunchFromTemplate"]["Condition"] == {
        "StringEquals": {"aws:RequestedRegion": regions}
    }
    # the image is built in us-east-1 and copied to the fleets' regions, tagged in each
    assert sids["CopyImages"]["Action"] == ["ec2:CopyImage"]
    assert sids["CopyImages"]["Condition"] == {"StringEquals": {"aws:RequestedRegion": regions}}
    assert sids["PackerLaunchFrom"]["Condition"] == {
        "StringEquals": {"aws:RequestedRegion": ["us-east-1"]}
    }
