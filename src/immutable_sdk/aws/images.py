"""Golden images in AWS: list a project's artifacts, find what uses them, delete them.

Artifacts are found by their lineage tags (``immutable-sdk:project``, ``:image``, ``:digest``...)
on AMIs the account owns, in every region the spec's images use. What must not be deleted comes
from three places: the state store (each fleet's current and previous release, rollouts in
progress), Auto Scaling groups tagged with the project (the launch template version each one
uses) and the project's instances that still exist (by the AMI each was launched from).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..clock import parse_time
from ..plugin import TAG_BUILDER, TAG_BUILT_AT, TAG_DIGEST, TAG_IMAGE, TAG_PROJECT
from ..spec.model import Spec
from .session import AwsSession, aws_errors, error_code

LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


@dataclass(frozen=True)
class StoredArtifact:
    """An artifact as found in AWS: one digest of one image, an AMI per region."""

    image: str
    digest: str
    builder: str
    built_at: float | None  # epoch seconds (lineage tag, else the AMI's creation date)
    amis: Mapping[str, str]  # region -> AMI id
    snapshots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # region -> ids
    name: str = ""

    def ami_ids(self) -> set[str]:
        return set(self.amis.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "digest": self.digest,
            "builder": self.builder,
            "built_at": self.built_at,
            "amis": dict(self.amis),
            "snapshots": {r: list(s) for r, s in self.snapshots.items()},
            "name": self.name,
        }


def _tags(resource: Mapping[str, Any]) -> dict[str, str]:
    return {str(t["Key"]): str(t["Value"]) for t in resource.get("Tags", ())}


def spec_regions(spec: Spec) -> list[str]:
    regions = dict.fromkeys([spec.region])
    for image in spec.images.values():
        regions.update(dict.fromkeys(image.regions))
    return list(regions)


def list_artifacts(
    session: AwsSession, project: str, regions: Iterable[str]
) -> list[StoredArtifact]:
    """Every artifact of the project in ``regions``, grouped by (image, digest), newest first."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for region in regions:
        ec2 = session.client("ec2", region)
        with aws_errors(f"listing the project's AMIs in {region}"):
            pages = ec2.get_paginator("describe_images").paginate(
                Owners=["self"], Filters=[{"Name": f"tag:{TAG_PROJECT}", "Values": [project]}]
            )
            images = [i for page in pages for i in page["Images"]]
        for ami in images:
            tags = _tags(ami)
            key = (tags.get(TAG_IMAGE, "?"), tags.get(TAG_DIGEST, str(ami["ImageId"])))
            if region in groups.get(key, {}).get("amis", {}):
                key = (key[0], f"{key[1]}#{ami['ImageId']}")  # a duplicate: its own artifact
            group = groups.setdefault(
                key,
                {
                    "builder": tags.get(TAG_BUILDER, "?"),
                    "built_at": parse_time(tags.get(TAG_BUILT_AT))
                    or parse_time(ami.get("CreationDate")),
                    "name": str(ami.get("Name", "")),
                    "amis": {},
                    "snapshots": {},
                },
            )
            group["amis"][region] = str(ami["ImageId"])
            group["snapshots"][region] = tuple(
                str(m["Ebs"]["SnapshotId"])
                for m in ami.get("BlockDeviceMappings", ())
                if m.get("Ebs", {}).get("SnapshotId")
            )
    return [
        StoredArtifact(image=image, digest=digest.split("#")[0], **group)
        for (image, digest), group in groups.items()
    ]


def _template_refs(groups: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, str]]:
    """(``LaunchTemplateId`` or ``LaunchTemplateName``, value) -> version -> group name.

    Each group's own launch template version. The versions its instances report are not
    used: the emulator reports the template's default version whatever an instance was
    launched from (so the fleet's first AMI was kept "by" a version the group no longer
    used), and an instance's AMI is protected by the instance itself (``in_use_by_aws``),
    by its real ``ImageId``, on AWS and on the emulator alike.
    """
    refs: dict[tuple[str, str], dict[str, str]] = {}
    for group in groups:
        name = str(group["AutoScalingGroupName"])
        mixed = group.get("MixedInstancesPolicy", {}).get("LaunchTemplate", {})
        own = group.get("LaunchTemplate") or mixed.get("LaunchTemplateSpecification", {})
        for ref in (own,):
            key = "LaunchTemplateId" if ref.get("LaunchTemplateId") else "LaunchTemplateName"
            if ref.get(key):
                versions = refs.setdefault((key, str(ref[key])), {})
                versions.setdefault(str(ref.get("Version") or "$Default"), name)
    return refs


def in_use_by_aws(session: AwsSession, project: str, regions: Iterable[str]) -> dict[str, str]:
    """AMI id -> what uses it: the project's Auto Scaling groups and its existing instances."""
    used: dict[str, str] = {}
    tag_filter = {"Name": f"tag:{TAG_PROJECT}", "Values": [project]}
    for region in regions:
        ec2 = session.client("ec2", region)
        autoscaling = session.client("autoscaling", region)
        with aws_errors(f"finding what uses the project's AMIs in {region}"):
            pages = autoscaling.get_paginator("describe_auto_scaling_groups").paginate(
                Filters=[tag_filter]
            )
            groups = [g for page in pages for g in page["AutoScalingGroups"]]
            for (key, template), versions in _template_refs(groups).items():
                group = next(iter(versions.values()))
                described = ec2.describe_launch_template_versions(
                    **{key: template}, Versions=sorted(versions)
                )["LaunchTemplateVersions"]
                for v in described:
                    ami = v.get("LaunchTemplateData", {}).get("ImageId")
                    if ami:
                        used.setdefault(
                            str(ami),
                            f"launch template {v['LaunchTemplateName']} version "
                            f"{v['VersionNumber']} (auto scaling group {group})",
                        )
            live = {"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}
            pages = ec2.get_paginator("describe_instances").paginate(Filters=[tag_filter, live])
            for page in pages:
                for reservation in page["Reservations"]:
                    for i in reservation["Instances"]:
                        used.setdefault(str(i["ImageId"]), f"instance {i['InstanceId']}")
    return used


def delete_artifact(session: AwsSession, artifact: StoredArtifact) -> list[str]:
    """Deregister the artifact's AMIs and delete their snapshots; returns what was deleted."""
    deleted: list[str] = []
    for region, ami in artifact.amis.items():
        ec2 = session.client("ec2", region)
        with aws_errors(f"deleting AMI {ami} in {region}"):
            try:
                ec2.deregister_image(ImageId=ami)
                deleted.append(ami)
            except Exception as exc:
                if error_code(exc) != "InvalidAMIID.NotFound":
                    raise
            for snapshot in artifact.snapshots.get(region, ()):
                try:
                    ec2.delete_snapshot(SnapshotId=snapshot)
                    deleted.append(snapshot)
                except Exception as exc:
                    if error_code(exc) != "InvalidSnapshot.NotFound":
                        raise
    return deleted
