"""``iam-policy`` for fleets in several regions: regional ARNs in every region they use."""

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
    sids = {s["Sid"]: s for s in policy_document(spec, account="1")["Statement"]}
    regions = ["ap-south-1", "eu-west-1", "us-east-1"]
    assert sids["Groups"]["Resource"] == [  # whose: the project's tag says
        f"arn:aws:autoscaling:{r}:1:autoScalingGroup:*:autoScalingGroupName/*" for r in regions
    ]
    assert sids["CreateGroups"]["Resource"] == [  # each group by name, where its fleet runs
        f"arn:aws:autoscaling:{r}:1:autoScalingGroup:*:autoScalingGroupName/{g}"
        for r, g in [
            ("ap-south-1", "shop-api"),
            ("eu-west-1", "shop-web"),
            ("us-east-1", "shop-web"),
        ]
    ]
    assert sids["LaunchTemplateVersions"]["Resource"] == [
        f"arn:aws:ec2:{r}:1:launch-template/*" for r in regions
    ]
    # a target group is looked for where its fleet runs, not elsewhere
    assert sids["DeregisterTargets"]["Resource"] == [
        f"arn:aws:elasticloadbalancing:{r}:1:targetgroup/shop-web/*"
        for r in ("eu-west-1", "us-east-1")
    ]
    # the image is built in us-east-1 and copied to the fleets' regions, tagged in each
    assert sids["CopyImages"]["Action"] == ["ec2:CopyImage"]
    assert {r.split(":")[3] for r in sids["TagImages"]["Resource"]} == set(regions)
