"""AWS reads and writes of drift detection and repair: template versions, images, group settings.

Reads are batched: one DescribeLaunchTemplateVersions per fleet, one DescribeImages for every
release AMI of the spec. Writes restore what the SDK set on a group; they never touch an
instance (instances are replaced, by a rollout).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..plugin import TAG_RELEASE
from .fleet import FleetApi
from .session import AwsSession, aws_errors, error_code

_TEMPLATE_MISSING = (
    "InvalidLaunchTemplateName.NotFoundException",
    "InvalidLaunchTemplateId.NotFound",
)


@dataclass(frozen=True)
class TemplateVersion:
    """A version of the fleet's launch template, as far as drift cares."""

    number: int
    release: str | None  # the release tag in its TagSpecifications
    default: bool = False


def template_versions(api: FleetApi, fleet: str) -> list[TemplateVersion]:
    """Every version of the fleet's launch template with its release tag (none if no template)."""
    name = api.name(fleet)
    out: list[TemplateVersion] = []
    with aws_errors(f"describing launch template {name}"):
        try:
            pages = list(
                api.ec2.get_paginator("describe_launch_template_versions").paginate(
                    LaunchTemplateName=name
                )
            )
        except Exception as exc:
            if error_code(exc) in _TEMPLATE_MISSING:
                return []
            raise
    for page in pages:
        for v in page["LaunchTemplateVersions"]:
            release = None
            for spec in v.get("LaunchTemplateData", {}).get("TagSpecifications", []):
                tags = {t["Key"]: t["Value"] for t in spec.get("Tags", [])}
                release = release or tags.get(TAG_RELEASE)
            out.append(
                TemplateVersion(
                    number=int(v["VersionNumber"]),
                    release=release,
                    default=bool(v.get("DefaultVersion")),
                )
            )
    return sorted(out, key=lambda v: v.number)


def describe_images(
    session: AwsSession, region: str, amis: Iterable[str]
) -> dict[str, dict[str, Any] | None]:
    """Each AMI's description, None for one the region no longer knows (deregistered).

    A filter rather than ImageIds: AWS fails the whole call on one unknown id.
    """
    ids = sorted(set(amis))
    found: dict[str, dict[str, Any] | None] = dict.fromkeys(ids)
    if not ids:
        return found
    ec2 = session.client("ec2", region)
    with aws_errors("describing the releases' images"):
        for i in range(0, len(ids), 200):
            pages = ec2.get_paginator("describe_images").paginate(
                Filters=[{"Name": "image-id", "Values": ids[i : i + 200]}],
                IncludeDeprecated=True,
            )
            for page in pages:
                for image in page["Images"]:
                    found[str(image["ImageId"])] = dict(image)
    return found


def set_target_groups(api: FleetApi, fleet: str, want: Sequence[str], have: Sequence[str]) -> None:
    """Attach the release's target groups the group lacks and detach the others."""
    name = api.name(fleet)
    attach = sorted(set(want) - set(have))
    detach = sorted(set(have) - set(want))
    with aws_errors(f"restoring the target groups of {name}"):
        if attach:
            api.asg.attach_load_balancer_target_groups(
                AutoScalingGroupName=name, TargetGroupARNs=attach
            )
        if detach:
            api.asg.detach_load_balancer_target_groups(
                AutoScalingGroupName=name, TargetGroupARNs=detach
            )


def set_group_settings(
    api: FleetApi,
    fleet: str,
    *,
    health_check_type: str | None = None,
    subnets: Sequence[str] | None = None,
) -> None:
    """Put back the group's health check type and subnets (only those given)."""
    args: dict[str, Any] = {"AutoScalingGroupName": api.name(fleet)}
    if health_check_type is not None:
        args["HealthCheckType"] = health_check_type
    if subnets is not None:
        args["VPCZoneIdentifier"] = ",".join(subnets)
    if len(args) == 1:
        return
    with aws_errors(f"restoring the settings of {api.name(fleet)}"):
        api.asg.update_auto_scaling_group(**args)
