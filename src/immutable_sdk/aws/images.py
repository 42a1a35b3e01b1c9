"""Golden images in AWS: list a project's artifacts, find what uses them, garbage-collect.

Artifacts are found by their lineage tags (``immutable-sdk:project``, ``:image``, ``:digest``...)
on AMIs the account owns, in every region the spec's images use. What must not be deleted comes
from three places: the state store (each fleet's current and previous release, rollouts in
progress), Auto Scaling groups tagged with the project (the launch template version each one
uses) and the project's instances that still exist (by the AMI each was launched from).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..plugin import TAG_BUILDER, TAG_BUILT_AT, TAG_DIGEST, TAG_IMAGE, TAG_PROJECT
from ..retention import GcPlan, StoredArtifact, newest_first, plan_gc, release_usage
from ..spec.model import Spec
from ..state.base import StateStore
from .session import AwsSession, aws_errors, error_code

LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


def _parse_time(text: str | None) -> float | None:
    import datetime as dt

    if not text:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)).timestamp()


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
                    "built_at": _parse_time(tags.get(TAG_BUILT_AT))
                    or _parse_time(ami.get("CreationDate")),
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
    return newest_first(
        [
            StoredArtifact(image=image, digest=digest.split("#")[0], **group)
            for (image, digest), group in groups.items()
        ]
    )


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


@dataclass
class ImageInventory:
    """Artifacts per image with what uses each AMI, and what must not be deleted."""

    artifacts: list[StoredArtifact]
    usage: dict[str, list[str]] = field(default_factory=dict)  # AMI id -> releases using it
    protected: dict[str, str] = field(default_factory=dict)  # AMI id -> why it must stay

    def of(self, image: str) -> list[StoredArtifact]:
        return [a for a in self.artifacts if a.image == image]

    def used_by(self, artifact: StoredArtifact) -> list[str]:
        return sorted({u for ami in artifact.ami_ids() for u in self.usage.get(ami, ())})


def inventory(spec: Spec, session: AwsSession, state: StateStore) -> ImageInventory:
    """The project's artifacts, the releases that use them and everything that protects them."""
    regions = spec_regions(spec)
    result = ImageInventory(list_artifacts(session, spec.name, regions))
    for fleet, _, _ in spec.units():  # fleet@region: a fleet's releases in another region
        usage, protected = release_usage(fleet, state.releases(fleet), state.rollouts(fleet))
        for ami, labels in usage.items():
            result.usage.setdefault(ami, []).extend(labels)
        for ami, why in protected.items():
            result.protected.setdefault(ami, why)
    for ami, why in in_use_by_aws(session, spec.name, regions).items():
        result.protected.setdefault(ami, f"used by {why}")
    return result


def plan_collection(
    spec: Spec, found: ImageInventory, now: float, min_age: float
) -> dict[str, GcPlan]:
    """Per image of the spec with ``retain`` set: what to keep and what to delete."""
    plans: dict[str, GcPlan] = {}
    for name, image in spec.images.items():
        artifacts = found.of(name)
        if image.retain is None:
            plans[name] = GcPlan([(a, "the image sets no retain") for a in artifacts], [])
        else:
            plans[name] = plan_gc(artifacts, found.protected, now, image.retain, min_age)
    return plans


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


def collect(
    spec: Spec, session: AwsSession, plans: Mapping[str, GcPlan], *, dry_run: bool
) -> list[tuple[StoredArtifact, Sequence[str]]]:
    """Carry out the plans (unless ``dry_run``): each deleted artifact and its resources."""
    done: list[tuple[StoredArtifact, Sequence[str]]] = []
    for plan in plans.values():
        for artifact in plan.delete:
            if dry_run:
                resources = [
                    *artifact.amis.values(),
                    *(s for ss in artifact.snapshots.values() for s in ss),
                ]
            else:
                resources = delete_artifact(session, artifact)
            done.append((artifact, resources))
    return done
