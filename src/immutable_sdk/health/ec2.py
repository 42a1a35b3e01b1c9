"""The ``ec2`` health check: EC2 instance and system status checks of the release's instances.

One batched ``DescribeInstanceStatus`` per poll (100 ids a call, AWS's limit), never one call per
instance; fleets gated at the same moment (parallel rollouts) share those calls. ``ok``/``ok``
is healthy; ``initializing``, ``insufficient-data`` and ``not-applicable`` on a running or
pending instance mean "not yet"; ``impaired`` or an instance that is stopping, stopped or
terminated means the release is bad.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from immutable_sdk.plugin import (
    Coalescer,
    GateTargets,
    HealthCheckFactory,
    HealthReport,
    HealthStatus,
    PluginContext,
    Registry,
    aws_error_code,
    hookimpl,
    shared_coalescer,
)

BATCH = 100  # DescribeInstanceStatus accepts at most 100 instance ids
DEAD_STATES = frozenset({"shutting-down", "terminated", "stopping", "stopped"})
_INSTANCE_ID = re.compile(r"i-[0-9a-f]+")

SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "description": "EC2 status checks: every instance running with instance and system status ok.",
    "properties": {
        "type": {"const": "ec2", "description": "Selects this check."},
    },
    "required": ["type"],
    "additionalProperties": False,
}


def _verdict(status: Mapping[str, Any]) -> tuple[HealthStatus, str]:
    state = str(status.get("InstanceState", {}).get("Name", "unknown"))
    if state in DEAD_STATES:
        return HealthStatus.UNHEALTHY, f"instance is {state}"
    instance = str(status.get("InstanceStatus", {}).get("Status", "not-applicable"))
    system = str(status.get("SystemStatus", {}).get("Status", "not-applicable"))
    text = f"{state}, instance status {instance}, system status {system}"
    if "impaired" in (instance, system):
        return HealthStatus.UNHEALTHY, text
    if state == "running" and instance == "ok" and system == "ok":
        return HealthStatus.HEALTHY, text
    return HealthStatus.PENDING, text


class Ec2StatusCheck:
    """Judges each instance by its latest status; keeps no state between polls."""

    def check(self, targets: GateTargets, ctx: PluginContext) -> HealthReport:
        ids = [t.instance_id for t in targets.instances]
        if not ids:
            return HealthReport.pending("no instances to check yet")
        statuses = _shared(ctx.client("ec2")).get(ids)
        details: dict[str, str] = {}
        verdicts: list[HealthStatus] = []
        for instance_id in ids:
            status = statuses.get(instance_id)
            if status is not None:
                verdict, text = _verdict(status)
            else:
                # Just-launched instances may be unknown to EC2 for a moment (eventual
                # consistency); one that stays unknown runs the gate into its timeout.
                verdict, text = HealthStatus.PENDING, "not known to EC2 (yet)"
            verdicts.append(verdict)
            details[instance_id] = text
        return _report(verdicts, details, len(ids))


Statuses = Coalescer[str, "Mapping[str, Any] | None"]


def _shared(ec2: Any) -> Statuses:
    """The coalescer of ``ec2`` (one per client: a region and its credentials)."""

    def make(client: Any) -> Any:
        def fetch(ids: list[str]) -> dict[str, Mapping[str, Any] | None]:
            statuses: dict[str, Mapping[str, Any]] = {}
            for start in range(0, len(ids), BATCH):
                statuses.update(_describe(client, ids[start : start + BATCH]))
            return {i: statuses.get(i) for i in ids}

        return fetch

    return shared_coalescer(ec2, "ec2-status", make)


def _describe(ec2: Any, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
    """Statuses by instance id; ids EC2 does not know are left out."""
    try:
        response = ec2.describe_instance_status(InstanceIds=list(ids), IncludeAllInstances=True)
    except Exception as exc:
        # One unknown id fails the whole call: retry once without the ids AWS named.
        if aws_error_code(exc) != "InvalidInstanceID.NotFound":
            raise
        missing = set(_INSTANCE_ID.findall(str(exc)))
        known = [i for i in ids if i not in missing]
        if len(known) == len(ids):
            raise
        if not known:
            return {}
        response = ec2.describe_instance_status(InstanceIds=known, IncludeAllInstances=True)
    return {str(s["InstanceId"]): s for s in response.get("InstanceStatuses", [])}


def _report(verdicts: Sequence[HealthStatus], details: dict[str, str], total: int) -> HealthReport:
    bad = verdicts.count(HealthStatus.UNHEALTHY)
    good = verdicts.count(HealthStatus.HEALTHY)
    if bad:
        first = list(details)[verdicts.index(HealthStatus.UNHEALTHY)]
        summary = f"{bad}/{total} instances failed ({first}: {details[first]})"
        return HealthReport(HealthStatus.UNHEALTHY, details, summary)
    if good == total:
        return HealthReport(HealthStatus.HEALTHY, details, f"{total}/{total} instances ok")
    return HealthReport(HealthStatus.PENDING, details, f"{good}/{total} instances ok")


def factory(config: Mapping[str, Any]) -> Ec2StatusCheck:
    return Ec2StatusCheck()


@hookimpl
def immutable_sdk_add_health_checks(registry: Registry[HealthCheckFactory]) -> None:
    registry.add(
        "ec2",
        factory,
        schema=SCHEMA,
        description="EC2 instance and system status checks (one batched call per poll).",
    )
