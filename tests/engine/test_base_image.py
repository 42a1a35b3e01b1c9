"""A newer base image is a rebuild, not a stale golden image (issue 18).

The template starts from ``source_ami_filter { most_recent = true }``. The packer builder looks
the filter up at plan time and puts the base AMI in the image's digest: once a newer AMI that
matches the filter is registered, ``plan`` says ``base ami-old -> ami-new: rebuild``, ``drift``
reports the fleet's release as built on a stale base, and ``apply`` bakes and rolls out a new
image from the new base. A real ``packer`` runs against the emulator.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from .conftest import AMI_V1, World

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("packer") is None, reason="needs the packer binary"),
]

TEMPLATE = """
variable "region" {
  type    = string
  default = "us-east-1"
}
variable "ec2_endpoint" {
  type    = string
  default = ""
}
variable "communicator" {
  type    = string
  default = "ssh"
}
variable "immutable_sdk_tags" {
  type    = map(string)
  default = {}
}
locals {
  base = "golden-base-*"
}
source "amazon-ebs" "web" {
  region                 = var.region
  custom_endpoint_ec2    = var.ec2_endpoint
  skip_region_validation = true
  instance_type          = "t3.micro"
  ami_name               = "web-${formatdate("YYYYMMDDhhmmss", timestamp())}-${uuidv4()}"
  source_ami_filter {
    filters = {
      name = local.base
    }
    owners = [
      "self",
    ]
    most_recent = true
  }
  communicator = var.communicator
  run_tags     = var.immutable_sdk_tags
  tags         = var.immutable_sdk_tags
}
build {
  sources = ["source.amazon-ebs.web"]
}
"""

SPEC = """
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web: {builder: packer, template: web.pkr.hcl}
fleets:
  web:
    image: web
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {min: 1, desired: 1, max: 2}
    strategy: {type: rolling, batch_size: 1}
    health: {timeout: 5m, interval: 5s, checks: [{type: ec2}]}
"""


def register_base(world: World, name: str) -> dict[str, Any]:
    """A new EBS-backed base AMI in the account, as an upstream's pipeline would make one."""
    ec2 = world.client("ec2")
    (instance,) = ec2.run_instances(ImageId=AMI_V1, MinCount=1, MaxCount=1)["Instances"]
    ami = ec2.create_image(InstanceId=instance["InstanceId"], Name=name)
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    (image,) = ec2.describe_images(ImageIds=[ami["ImageId"]])["Images"]
    return dict(image)


def test_a_newer_base_image_is_a_rebuild_and_stale_base_drift(world: World) -> None:
    (world.tmp / "web.pkr.hcl").write_text(TEMPLATE)
    world.write(SPEC)
    old = register_base(world, "golden-base-2026-12-01")

    with world.engine() as engine:
        first = engine.apply()
    assert first.ok, first.to_dict()
    (built,) = first.builds
    assert built["lineage"]["immutable-sdk:source-ami"] == old["ImageId"]
    with world.engine() as engine:
        assert engine.plan().item("web").action == "noop"
        assert engine.drift(["web"]).clean

    new = register_base(world, "golden-base-2026-12-02")  # the upstream's fixes
    assert new["CreationDate"] >= old["CreationDate"]
    with world.engine() as engine:
        plan = engine.plan()
        item = plan.item("web")
        assert (item.action, item.build, plan.builds) == ("replace", True, ("web",)), item
        assert item.reasons == (f"image 'web': base {old['ImageId']} -> {new['ImageId']}: rebuild",)
        drift = engine.drift(["web"])
        stale = [d for d in drift.drifts if d.kind == "stale-base"]
        assert [(d.expected, d.found, d.remedy) for d in stale] == [
            (new["ImageId"], old["ImageId"], "rebuild")
        ]
        second = engine.apply()
    assert second.ok, second.to_dict()
    (rebuilt,) = second.builds
    assert rebuilt["lineage"]["immutable-sdk:source-ami"] == new["ImageId"]
    assert rebuilt["digest"] != built["digest"]
    assert {m["ImageId"] for m in world.members()} == {rebuilt["amis"]["us-east-1"]}
    with world.engine() as engine:
        assert engine.plan().item("web").action == "noop"
        assert engine.drift(["web"]).clean
