"""Instances of a fleet that no Auto Scaling group holds: what a killed rollout left behind.

A retire detaches instances from their group and then terminates them; a process killed in
between leaves them running outside any group, serving nobody and costing money. They are
found from AWS itself, by the tags every instance of a fleet carries (docs/design.md, section 6):
``immutable-sdk:project`` and ``immutable-sdk:fleet``, and ``immutable-sdk:release``.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..plugin import TAG_FLEET, TAG_PROJECT, TAG_RELEASE
from .fleet import FleetApi
from .session import aws_errors

ALIVE = ["pending", "running", "stopping", "stopped"]


def outside_groups(
    api: FleetApi, fleet: str, *, releases: Iterable[str | None] = (), ids: Iterable[str] = ()
) -> list[str]:
    """Instances tagged with ``fleet`` that are alive and in no Auto Scaling group, whose
    release is one of ``releases`` or whose id is one of ``ids``; sorted."""
    wanted_releases = {r for r in releases if r}
    wanted_ids = set(ids)
    candidates: list[str] = []
    with aws_errors(f"looking for instances of fleet {fleet!r} outside its group"):
        paginator = api.ec2.get_paginator("describe_instances")
        pages = paginator.paginate(
            Filters=[
                {"Name": f"tag:{TAG_PROJECT}", "Values": [api.project]},
                {"Name": f"tag:{TAG_FLEET}", "Values": [fleet]},
                {"Name": "instance-state-name", "Values": ALIVE},
            ]
        )
        for page in pages:
            for reservation in page["Reservations"]:
                for inst in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                    iid = inst["InstanceId"]
                    if iid in wanted_ids or tags.get(TAG_RELEASE) in wanted_releases:
                        candidates.append(iid)
        in_groups: set[str] = set()
        for i in range(0, len(candidates), 50):
            out = api.asg.describe_auto_scaling_instances(InstanceIds=candidates[i : i + 50])
            in_groups |= {a["InstanceId"] for a in out["AutoScalingInstances"]}
    return sorted(set(candidates) - in_groups)


def terminate(api: FleetApi, ids: Iterable[str]) -> None:
    found = list(ids)
    with aws_errors("terminating instances left outside their group"):
        for i in range(0, len(found), 500):
            api.ec2.terminate_instances(InstanceIds=found[i : i + 500])
