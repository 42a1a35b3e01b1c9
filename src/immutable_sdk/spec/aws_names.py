"""Names and tags as AWS accepts them, checked where the spec writes them.

The SDK names its Auto Scaling groups and launch templates ``{project}-{fleet}`` (slot groups
``{project}-{fleet}-{slot}``; ``aws/fleet.py``, ``aws/slots.py``) and tags what it creates with
its own tags besides the fleet's. A name too long is reported at the key that makes it so: the
project's ``name`` when no fleet name could fit, else the fleet's. Names the spec refers to
(target groups, load balancers) are checked against AWS's rules for them.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from .checker import Checker, Path_
from .nodes import LDict, LList

MAX_NAMES_LENGTH = 40  # len(project) + len(fleet): '{project}-{fleet}-green' stays short
MAX_TAGS = 50  # per resource, EC2 and Auto Scaling alike
# The most tags the SDK puts on one resource: project, fleet, release and rollout on instances
# and volumes (aws/fleet.py launch_data); project, fleet, slot and release on slot groups.
SDK_TAGS_PER_RESOURCE = 4
_RESERVED_TAG_PREFIXES = ("aws:", "immutable-sdk:")
_TAG_PUNCTUATION = frozenset("_.:/=+-@")
ELB_NAME_LENGTH = 32  # target groups and load balancers


def check_project_name(c: Checker, project: Any) -> None:
    """The project name alone leaves room for a fleet name (one character at least)."""
    if isinstance(project, str) and len(project) >= MAX_NAMES_LENGTH:
        c.add(
            ("name",),
            f"project name {project!r} has {len(project)} characters; at most "
            f"{MAX_NAMES_LENGTH - 1} leave room for fleet names in the Auto Scaling group and "
            "launch template names '{project}-{fleet}-{slot}'",
        )


def check_fleet_name(c: Checker, path: Path_, project: Any, name: str) -> None:
    if not isinstance(project, str) or len(project) >= MAX_NAMES_LENGTH:
        return  # reported at the project's name
    if len(project) + len(name) > MAX_NAMES_LENGTH:
        c.add(
            path,
            f"fleet name {name!r} is too long for project {project!r}: together they have "
            f"{len(project) + len(name)} characters, at most {MAX_NAMES_LENGTH} fit in the "
            "Auto Scaling group and launch template names '{project}-{fleet}-{slot}' "
            f"(fleet names here may have {MAX_NAMES_LENGTH - len(project)})",
            key=True,
        )


def check_tags(c: Checker, path: Path_, tags: Any) -> None:
    """Keys and values AWS accepts, and room for the SDK's own tags."""
    if not isinstance(tags, LDict):
        return
    for key, value in tags.items():
        here = (*path, key)
        if not key:
            c.add(here, "tag keys may not be empty", key=True)
        elif key.lower().startswith(_RESERVED_TAG_PREFIXES):
            c.add(here, f"tag keys starting with {key.split(':')[0]}: are reserved", key=True)
        elif len(key) > 128:
            c.add(
                here, f"tag keys may have at most 128 characters, this one has {len(key)}", key=True
            )
        elif (bad := _refused(key)) is not None:
            c.add(here, f"tag key {key!r} has {bad}; {_ALLOWED}", key=True)
        if isinstance(value, str):
            if len(value) > 256:
                c.add(
                    here, f"tag values may have at most 256 characters, this one has {len(value)}"
                )
            elif (bad := _refused(value)) is not None:
                c.add(here, f"tag value has {bad}; {_ALLOWED}")
    room = MAX_TAGS - SDK_TAGS_PER_RESOURCE
    if len(tags) > room:
        c.add(
            path,
            f"{len(tags)} tags are too many: AWS allows {MAX_TAGS} per resource and the SDK adds "
            f"up to {SDK_TAGS_PER_RESOURCE} of its own (immutable-sdk:project, fleet, release, "
            f"rollout or slot), so at most {room}",
            key=True,
        )


_ALLOWED = "AWS accepts letters, digits, spaces and _ . : / = + - @"


def _refused(text: str) -> str | None:
    for ch in text:
        if ch in _TAG_PUNCTUATION or unicodedata.category(ch)[0] in "LNZ":
            continue
        return f"the character {ch!r}"
    return None


def check_elb_name(c: Checker, path: Path_, value: Any, what: str) -> None:
    """A target group or load balancer named (not an ARN): at most 32 letters, digits or '-'."""
    if not isinstance(value, str) or value.startswith("arn:"):
        return
    if (
        len(value) > ELB_NAME_LENGTH
        or not value
        or value[0] == "-"
        or value[-1] == "-"
        or not all(ch.isascii() and (ch.isalnum() or ch == "-") for ch in value)
    ):
        c.add(
            path,
            f"{what} {value!r} is not a name AWS accepts: at most {ELB_NAME_LENGTH} letters, "
            "digits and '-', not starting or ending with '-' (or give its ARN)",
        )


def check_references(c: Checker, path: Path_, fleet: LDict) -> None:
    """The target groups and load balancers a fleet names."""
    balancer = fleet.get("load_balancer")
    groups = balancer.get("target_groups") if isinstance(balancer, LDict) else None
    for i, ref in enumerate(groups if isinstance(groups, LList) else ()):
        check_elb_name(c, (*path, "load_balancer", "target_groups", i), ref, "target group")
    traffic = fleet.get("traffic")
    slots = traffic.get("slots") if isinstance(traffic, LDict) else None
    for slot, block in slots.items() if isinstance(slots, LDict) else ():
        if isinstance(block, LDict):
            here = (*path, "traffic", "slots", slot)
            check_elb_name(c, (*here, "target_group"), block.get("target_group"), "target group")
            check_elb_name(c, (*here, "load_balancer"), block.get("load_balancer"), "load balancer")
