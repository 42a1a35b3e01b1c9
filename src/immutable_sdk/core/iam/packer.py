"""Packer's part of the IAM policy: its calls, scoped by the tags the SDK makes it put on.

The SDK passes its lineage tags to a template (``immutable_sdk_tags``, a map, in HCL2;
``immutable_sdk_project`` for JSON templates), and the template gives them to ``run_tags`` and
``run_volume_tags`` (the build instance and its volumes, tagged at launch), ``tags`` and
``snapshot_tags`` (the AMI and its snapshots). So:

* the build instance may be launched only carrying the project's tag (``aws:RequestTag`` on
  ``RunInstances``), and stopped, modified, imaged and terminated only if it carries it
  (``aws:ResourceTag``), as its volumes;
* AMIs and snapshots may be tagged only with the project's tag in the request, and deregistered
  or deleted only if they carry it (never shared: ``Modify*Attribute`` is not allowed);
* creating an image, volume or snapshot, and ``Describe*`` calls (which AWS cannot scope), are
  allowed without a tag, in the images' regions only;
* Packer's temporary key pairs are allowed by their name (``packer_*``). Packer 1.6.6 cannot tag
  its temporary security group, and no IAM condition tells it from any other group (its name is
  not a condition key): opening and deleting it would mean opening and deleting every group
  without a project tag. So the template should bring its own (``security_group_id(s)`` /
  ``security_group_filter``); ``--packer-temporary-security-group`` allows the temporary one
  on untagged groups, for those who accept that.

Packer 1.6.6 tags the AMI at the end of a build: what a template asks it to do to the AMI
before that (``ami_description``, ``ami_users``, ``encrypt_boot``...) is denied by this policy;
``packer_notes`` says so for the spec's templates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ...builders.packer_template import template_settings
from ...plugin import TAG_PROJECT
from .builder import REQUESTED_REGION, PolicyBuilder, retag_guard

if TYPE_CHECKING:
    from ...spec.model import ImageSpec

PACKER_READS = (
    "ec2:DescribeImageAttribute",
    "ec2:DescribeImages",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeRegions",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSnapshots",
    "ec2:DescribeSubnets",
    "ec2:DescribeTags",
    "ec2:DescribeVolumes",
)
# on the build instance (and its volumes), which carries the project's tag from its launch
PACKER_INSTANCE_ACTIONS = (
    "ec2:AttachVolume",
    "ec2:DetachVolume",
    "ec2:GetPasswordData",
    "ec2:ModifyInstanceAttribute",
    "ec2:StopInstances",
    "ec2:TerminateInstances",
    "ec2:DeleteVolume",
)
# Packer's clean-up (force_deregister, a failed build). Not Modify{Image,Snapshot}Attribute:
# Packer 1.6.6 calls them before it tags the AMI, where a tag condition refuses them anyway,
# and they would let the role share the project's AMIs and snapshots with any account.
PACKER_IMAGE_CHANGES = ("ec2:DeleteSnapshot", "ec2:DeregisterImage")
PACKER_CREATES = ("ec2:CopyImage", "ec2:CreateImage", "ec2:RegisterImage", "ec2:CreateSnapshot")
PACKER_KEY_PAIRS = ("ec2:CreateKeyPair", "ec2:DeleteKeyPair")
PACKER_SECURITY_GROUP = ("ec2:AuthorizeSecurityGroupIngress", "ec2:DeleteSecurityGroup")
PACKER_ACTIONS = (
    *PACKER_READS,
    *PACKER_INSTANCE_ACTIONS,
    *PACKER_IMAGE_CHANGES,
    *PACKER_CREATES,
    *PACKER_KEY_PAIRS,
    *PACKER_SECURITY_GROUP,
    "ec2:CreateSecurityGroup",
    "ec2:CreateVolume",
    "ec2:CreateTags",
    "ec2:RunInstances",
)

# Settings that must carry the SDK's tags, and what each tags.
TAG_SETTINGS = {
    "run_tags": "the build instance",
    "run_volume_tags": "its volumes",
    "tags": "the AMI",
    "snapshot_tags": "its snapshots",
}
# Settings that make Packer change the AMI before it tags it.
BEFORE_TAGGING = (
    "ami_description",
    "ami_users",
    "ami_groups",
    "ami_product_codes",
    "snapshot_users",
    "snapshot_groups",
    "encrypt_boot",
)
OWN_SECURITY_GROUP = ("security_group_id", "security_group_ids", "security_group_filter")
TEMPORARY_KEY_PAIR = "packer_*"  # Packer's default temporary_key_pair_name: packer_<uuid>


def packer_statements(
    p: PolicyBuilder,
    project: str,
    images: Iterable[ImageSpec],
    regions: Iterable[str],
    temporary_security_group: bool = False,
) -> None:
    """Allow what Packer calls to bake ``images`` (its build runs in each image's first
    region; ``regions``: where the images are copied, for their AMIs and snapshots)."""
    images = list(images)
    home = list(dict.fromkeys(i.regions[0] for i in images))
    regions = list(dict.fromkeys([*home, *regions]))

    tagged = {"StringEquals": {f"aws:ResourceTag/{TAG_PROJECT}": project}}
    requested = {"StringEquals": {f"aws:RequestTag/{TAG_PROJECT}": project}}
    instance = [p.any_region("ec2", "instance/*"), p.any_region("ec2", "volume/*")]
    amis = [
        p.any_region("ec2", "image/*", account=False),
        p.any_region("ec2", "snapshot/*", account=False),
    ]
    p.allow("PackerReads", PACKER_READS)
    p.allow("PackerLaunchTagged", ["ec2:RunInstances"], instance, requested)
    p.allow(
        "PackerLaunchFrom",
        ["ec2:RunInstances"],
        [
            p.any_region("ec2", f"{kind}/*")
            for kind in ("subnet", "security-group", "network-interface", "key-pair")
        ]
        + [p.any_region("ec2", "image/*", account=False)],
        regions=home,
    )
    p.allow(
        "PackerTagOnLaunch",
        ["ec2:CreateTags"],
        instance,
        {
            "StringEquals": {
                "ec2:CreateAction": "RunInstances",
                f"aws:RequestTag/{TAG_PROJECT}": project,
            }
        },
    )
    p.allow("PackerBuildInstance", PACKER_INSTANCE_ACTIONS, instance, tagged)
    p.allow("PackerImageFromInstance", ["ec2:CreateImage", "ec2:CreateSnapshot"], instance, tagged)
    p.allow(
        "PackerCreateImages",  # new AMIs and snapshots carry no tag yet: Packer tags them last
        [*PACKER_CREATES, "ec2:CreateVolume"],
        [*amis, p.any_region("ec2", "volume/*")],
        regions=regions,
    )
    p.allow("PackerTagImages", ["ec2:CreateTags"], amis, retag_guard(project))
    p.allow("PackerChangeOwnImages", PACKER_IMAGE_CHANGES, amis, tagged)
    p.allow(
        "PackerTemporaryKeyPairs",
        PACKER_KEY_PAIRS,
        [p.any_region("ec2", f"key-pair/{TEMPORARY_KEY_PAIR}")],
        regions=home,
    )
    if temporary_security_group and any(_temporary_security_group(i) for i in images):
        p.allow(
            "PackerCreateSecurityGroup",
            ["ec2:CreateSecurityGroup"],
            [p.any_region("ec2", "security-group/*"), p.any_region("ec2", "vpc/*")],
            regions=home,
        )
        p.allow(
            "PackerTemporarySecurityGroup",
            PACKER_SECURITY_GROUP,
            [p.any_region("ec2", "security-group/*")],
            {
                "Null": {f"aws:ResourceTag/{TAG_PROJECT}": "true"},
                "StringEquals": {REQUESTED_REGION: sorted(home)},
            },
        )


def _settings(image: ImageSpec) -> Mapping[str, str]:
    return template_settings(image.base_dir / str(image.config.get("template", "")))


def _temporary_security_group(image: ImageSpec) -> bool:
    return not any(s in _settings(image) for s in OWN_SECURITY_GROUP)


def packer_notes(images: Iterable[ImageSpec], temporary_security_group: bool = False) -> list[str]:
    """What in a spec's Packer templates the policy's tag conditions will refuse."""
    notes = []
    for image in images:
        settings = _settings(image)
        where = f"image {image.name!r} ({image.config.get('template')})"
        untagged = [
            f"{name} ({what})"
            for name, what in TAG_SETTINGS.items()
            if not _carries_project_tag(settings.get(name, ""))
        ]
        if untagged:
            notes.append(
                f"{where}: {', '.join(untagged)} must carry the SDK's tags "
                "(= var.immutable_sdk_tags), or the policy's tag conditions refuse Packer's calls"
            )
        early = [name for name in BEFORE_TAGGING if name in settings]
        if early:
            notes.append(
                f"{where}: {', '.join(early)} make(s) Packer change the AMI before it tags it, "
                "which the policy refuses; remove them (the SDK tags and copies the AMI itself)"
            )
        if _temporary_security_group(image) and not temporary_security_group:
            notes.append(
                f"{where}: Packer creates a temporary security group it cannot tag, which the "
                "policy refuses to open and delete (no condition tells it from your other "
                "groups): set security_group_id in the template to a group of yours, or accept "
                "the risk with --packer-temporary-security-group"
            )
        elif _temporary_security_group(image):
            notes.append(
                f"{where}: --packer-temporary-security-group lets the role open and delete "
                "every security group without a project tag in the build regions; "
                "security_group_id in the template avoids that"
            )
    return notes


def _carries_project_tag(value: str) -> bool:
    return any(k in value for k in ("immutable_sdk_tags", "immutable_sdk_project", TAG_PROJECT))


def unobserved_reasons() -> dict[str, Any]:
    return {a: "called by Packer itself (scoped by the tags it puts on)" for a in PACKER_ACTIONS}
