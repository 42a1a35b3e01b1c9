"""What each statement of ``iam-policy`` is for, and why a statement is on ``*``.

A JSON policy cannot hold comments: ``iam-policy`` prints these beside the documents (text),
in a field (``-o json``), as comments (``-o terraform``) or resource metadata
(``-o cloudformation``); docs/operations.md has the table ``statement_table`` makes (a test
keeps the two equal).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .pack import base_sid

PURPOSES: dict[str, str] = {
    "Read": "reads of planning, rollouts, drift and health checks (groups, instances, "
    "templates, images, target health, alarms, metrics)",
    "CreateLaunchTemplate": "create a fleet's launch template, only carrying the project's tag",
    "LaunchTemplateVersions": "write a release's template version; delete a failed or foreign "
    "version, or the template on destroy: only templates with the project's tag",
    "TagOnCreate": "tag a launch template and instances as they are created (tag-on-create); "
    "no other tagging",
    "LaunchTaggedInstances": "Auto Scaling checks that the caller may launch from the template: "
    "instances and volumes only carrying the project's tag",
    "LaunchFromTemplate": "the rest of that launch: the template, its AMI, subnets, security "
    "groups, network interfaces and key pair, in the spec's regions",
    "CreateGroups": "create a fleet's Auto Scaling group: named PROJECT-*, carrying the "
    "project's tag",
    "Groups": "update, suspend/resume, detach, re-attach target groups, delete: only groups "
    "with the project's tag",
    "TerminateOwnInstances": "terminate instances of a retired release: only with the "
    "project's tag",
    "TerminateGroupInstances": "terminate an instance attached to one of the spec's groups by "
    "hand (it has Auto Scaling's tag, not the SDK's): the spec's group names exactly",
    "PassInstanceRole": "a launch template with an instance profile passes its role to EC2, "
    "and to EC2 only",
    "DeregisterTargets": "take instances out of the spec's target groups before they stop, in "
    "the spec's regions",
    "TagImages": "tag a built AMI and its snapshots with their lineage: only with the project's "
    "tag, never one of another project",
    "CopyImages": "copy a built AMI to the regions of its fleets",
    "ImageBuilderPipelines": "run the spec's EC2 Image Builder pipeline",
    "ImageBuilderRecipes": "create an image from the spec's recipe and configurations",
    "ImageBuilderImages": "follow an Image Builder build",
    "State": "the DynamoDB state table: read, fenced writes, the lock",
    "TrafficReads": "find hosted zones by name; read target groups, load balancers, target "
    "health for traffic slots",
    "Route53ChangeStatus": "wait until a record change is INSYNC",
    "Route53ListRecords": "read the weighted records of the spec's zones",
    "Route53Zone": "change the spec's records in a zone given by id: only those record names",
    "Route53ZonesByName": "change the spec's records in zones given by name (their ids are "
    "known to AWS only): any zone, only those record names",
    "ImagesGc": "images gc: deregister AMIs and delete snapshots with the project's tag",
    "PackerReads": "Packer's reads (source AMI, subnets, volumes, its instance)",
    "PackerLaunchTagged": "Packer launches its build instance only carrying the project's tag",
    "PackerLaunchFrom": "the rest of that launch: the source AMI, subnet, security group, "
    "network interface, key pair, in the build regions",
    "PackerTagOnLaunch": "tag the build instance and its volumes at launch with the project's tag",
    "PackerBuildInstance": "stop, change, terminate the build instance and its volumes: only "
    "with the project's tag",
    "PackerImageFromInstance": "image the build instance: only with the project's tag",
    "PackerCreateImages": "the new AMI and snapshots (untagged until Packer tags them last), in "
    "the images' regions",
    "PackerTagImages": "tag the AMI and snapshots: only with the project's tag, never one of "
    "another project",
    "PackerChangeOwnImages": "Packer's clean-up (force_deregister, a failed build): only AMIs and "
    "snapshots with the project's tag",
    "PackerTemporaryKeyPairs": "Packer's temporary key pair, by its name packer_*",
    "PackerCreateSecurityGroup": "(--packer-temporary-security-group) Packer's temporary "
    "security group",
    "PackerTemporarySecurityGroup": "(--packer-temporary-security-group) open and delete it: "
    "any group without a project tag, in the build regions",
}

# The Step Functions orchestrator's roles (iam-policy --role orchestrator / worker)
ORCHESTRATOR_PURPOSES: dict[str, str] = {
    "TickQueueSend": "the state machine sends each Tick (with its task token) to the project's "
    "work queue, and nothing else",
    "TickQueueWork": "a worker takes Tick messages from the work queue, keeps one hidden while "
    "it ticks, and deletes it once answered",
    "TickAnswers": "a worker answers a Tick's task token (success, failure, heartbeat)",
    "Executions": "apply --on step-functions starts the plan's execution; status and abort "
    "read and stop the project's executions",
    "FindStateMachine": "find the project's state machine by name",
}

# Reads on "*" that AWS could scope, and why they are not.
STAR_BY_CHOICE: dict[str, str] = {
    "cloudwatch:DescribeAlarms": "the alarm health check and analysis read composite alarms "
    "too, which AWS returns only when DescribeAlarms is allowed on *",
    "ec2:DescribeImageAttribute": "Packer reads the source AMI's attributes; another account "
    "owns that AMI (Amazon, a vendor) and its id is not known in advance",
}
ONLY_ON_STAR = "AWS has no resource-level permission for them (allowed on * or not at all)"


def purpose(sid: str) -> str:
    name = re.sub(r"\d+$", "", base_sid(sid))
    return PURPOSES.get(name) or ORCHESTRATOR_PURPOSES[name]


def star_reason(statement: Mapping[str, Any]) -> str | None:
    """Why ``statement`` is on ``*``, or None when it names its resources."""
    resources = statement["Resource"]
    if "*" not in ([resources] if isinstance(resources, str) else resources):
        return None
    actions = statement["Action"]
    actions = [actions] if isinstance(actions, str) else list(actions)
    parts = [f"{a}: {STAR_BY_CHOICE[a]}" for a in actions if a in STAR_BY_CHOICE]
    rest = [a for a in actions if a not in STAR_BY_CHOICE]
    if rest:
        parts.insert(0, f"{', '.join(rest)}: {ONLY_ON_STAR}")
    return "; ".join(parts)


def explain(statement: Mapping[str, Any]) -> dict[str, Any]:
    """``{"sid", "purpose", "on_star"}`` for a statement (``on_star``: None when not on *)."""
    sid = str(statement["Sid"])
    return {"sid": sid, "purpose": purpose(sid), "on_star": star_reason(statement)}


def statement_table() -> str:
    """The Markdown table of docs/operations.md: each statement and what it is for."""
    lines = ["| statement | what it is for |", "| --- | --- |"]
    for sid, text in PURPOSES.items():
        name = f"`{sid}N`" if sid == "Route53Zone" else f"`{sid}`"
        lines.append(f"| {name} | {text} |")
    return "\n".join(lines)
