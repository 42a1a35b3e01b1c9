"""Launch template versions the SDK writes: IMDSv2, encrypted volumes, no public IP by default;
each opt-out (``security:``) changes exactly its own setting. Checked on the template version:
the emulator does not apply these to instances."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import AMI_V1, World, fleet_spec

DEFAULTS = {"imdsv2": "required", "encrypted": True, "public_ip": False}


def settings(world: World) -> dict[str, Any]:
    """The three settings of the launch template version the group runs."""
    group = world.group()
    version = group["LaunchTemplate"]["Version"]
    (v,) = world.client("ec2").describe_launch_template_versions(
        LaunchTemplateName="shop-web", Versions=[version]
    )["LaunchTemplateVersions"]
    data = v["LaunchTemplateData"]
    (nic,) = data["NetworkInterfaces"]
    volumes = [m["Ebs"] for m in data.get("BlockDeviceMappings", []) if "Ebs" in m]
    return {
        "imdsv2": data["MetadataOptions"]["HttpTokens"],
        "encrypted": bool(volumes) and all(e.get("Encrypted") for e in volumes),
        "public_ip": nic["AssociatePublicIpAddress"],
    }


def test_secure_by_default(world: World) -> None:
    world.write(fleet_spec(desired=1))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    assert settings(world) == DEFAULTS
    version = world.group()["LaunchTemplate"]["Version"]
    (v,) = world.client("ec2").describe_launch_template_versions(
        LaunchTemplateName="shop-web", Versions=[version]
    )["LaunchTemplateVersions"]
    (ebs,) = [m["Ebs"] for m in v["LaunchTemplateData"]["BlockDeviceMappings"]]
    assert ebs["Encrypted"] is True and ebs["DeleteOnTermination"] is True


@pytest.mark.parametrize(
    ("security", "changed"),
    [
        ("{imdsv2: optional}", {"imdsv2": "optional"}),
        ("{encrypt_volumes: false}", {"encrypted": False}),
        ("{public_ip: true}", {"public_ip": True}),
        ("{imdsv2: required, encrypt_volumes: true, public_ip: false}", {}),
    ],
)
def test_each_opt_out_changes_exactly_its_setting(
    world: World, security: str, changed: dict[str, Any]
) -> None:
    world.write(fleet_spec(desired=1) + f"    security: {security}\n")
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    assert settings(world) == {**DEFAULTS, **changed}
