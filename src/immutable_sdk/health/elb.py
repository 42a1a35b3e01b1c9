"""The ``elb`` health check: target health of the release's instances in the fleet's target groups.

One ``DescribeTargetHealth`` per target group per poll (the API takes one group a call), read
whole and filtered here to the instances under judgement; fleets polling at the same moment
share the call of a target group they have in common (``shared_coalescer``). A target group
keeps listing instances that left the group (moto even lists terminated ones as healthy), so
only the current members count. ``initial``, ``unused`` or
not registered means "not yet"; ``unhealthy`` or ``draining`` counts as a failed poll, and
``unhealthy_threshold`` failed polls in a row make the release bad.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from immutable_sdk.plugin import (
    GateTargets,
    HealthCheckFactory,
    HealthReport,
    HealthStatus,
    PluginContext,
    Registry,
    hookimpl,
    shared_coalescer,
)

FAILING_STATES = frozenset({"unhealthy", "draining"})

SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "description": "Load balancer target health of every instance in every target group.",
    "properties": {
        "type": {"const": "elb", "description": "Selects this check."},
        "unhealthy_threshold": {
            "type": "integer",
            "minimum": 1,
            "default": 3,
            "description": "Consecutive polls an instance may be unhealthy or draining before "
            "the release is judged bad.",
        },
    },
    "required": ["type"],
    "additionalProperties": False,
}


def _fetch(elbv2: Any) -> Any:
    def fetch(arns: list[str]) -> dict[str, list[Mapping[str, Any]]]:
        return {
            arn: list(
                elbv2.describe_target_health(TargetGroupArn=arn).get("TargetHealthDescriptions", [])
            )
            for arn in arns
        }

    return fetch


def _short(arn: str) -> str:
    """``targetgroup/web-tg/0123...`` -> ``web-tg`` (the name people know)."""
    parts = arn.split(":")[-1].split("/")
    return parts[1] if len(parts) >= 2 else arn


class TargetHealthCheck:
    def __init__(self, unhealthy_threshold: int = 3) -> None:
        self.unhealthy_threshold = unhealthy_threshold
        self._failing: dict[str, int] = {}  # instance id -> consecutive failed polls

    def snapshot(self) -> dict[str, Any]:
        """Consecutive failed polls per instance (health-check contract version 2)."""
        return {"failing": dict(sorted(self._failing.items()))}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take over the counts of ``snapshot()`` (ValueError for anything else)."""
        failing = state.get("failing")
        if not isinstance(failing, Mapping):
            raise ValueError("elb check state: expected {'failing': {...}}")
        self._failing = {str(i): int(n) for i, n in failing.items()}

    def check(self, targets: GateTargets, ctx: PluginContext) -> HealthReport:
        if not targets.target_groups:
            return HealthReport.healthy("no target groups")
        ids = [t.instance_id for t in targets.instances]
        if not ids:
            return HealthReport.pending("no instances to check yet")
        elbv2 = ctx.client("elbv2")
        # instance id -> (target group, state, reason) for each registration
        seen: dict[str, list[tuple[str, str, str]]] = {i: [] for i in ids}
        by_group = shared_coalescer(elbv2, "target-health", _fetch).get(targets.target_groups)
        for arn in targets.target_groups:
            for desc in by_group[arn]:
                instance_id = str(desc.get("Target", {}).get("Id", ""))
                if instance_id in seen:
                    health = desc.get("TargetHealth", {})
                    state = str(health.get("State", "unavailable"))
                    reason = str(health.get("Reason") or health.get("Description") or "")
                    seen[instance_id].append((arn, state, reason))
        details: dict[str, str] = {}
        healthy = 0
        failed: list[str] = []
        for instance_id in ids:
            verdict, details[instance_id] = self._judge(instance_id, seen[instance_id], targets)
            healthy += verdict is HealthStatus.HEALTHY
            if verdict is HealthStatus.UNHEALTHY:
                failed.append(instance_id)
        total = len(ids)
        if failed:
            first = failed[0]
            summary = f"{len(failed)}/{total} instances unhealthy ({first}: {details[first]})"
            return HealthReport(HealthStatus.UNHEALTHY, details, summary)
        if healthy == total:
            summary = f"{total}/{total} instances healthy in {len(targets.target_groups)} groups"
            return HealthReport(HealthStatus.HEALTHY, details, summary)
        return HealthReport(HealthStatus.PENDING, details, f"{healthy}/{total} instances healthy")

    def _judge(
        self, instance_id: str, seen: list[tuple[str, str, str]], targets: GateTargets
    ) -> tuple[HealthStatus, str]:
        registered = {arn for arn, _, _ in seen}
        absent = [_short(a) for a in targets.target_groups if a not in registered]
        failing = [(a, s, r) for a, s, r in seen if s in FAILING_STATES]
        if failing:
            count = self._failing.get(instance_id, 0) + 1
            self._failing[instance_id] = count
            arn, state, reason = failing[0]
            text = f"{state} in {_short(arn)}" + (f" ({reason})" if reason else "")
            text += f", {count}/{self.unhealthy_threshold} polls"
            if count >= self.unhealthy_threshold:
                return HealthStatus.UNHEALTHY, text
            return HealthStatus.PENDING, text
        self._failing.pop(instance_id, None)
        if absent:
            return HealthStatus.PENDING, f"not registered in {', '.join(absent)}"
        waiting = [(a, s) for a, s, _ in seen if s != "healthy"]
        if waiting:
            return HealthStatus.PENDING, ", ".join(f"{s} in {_short(a)}" for a, s in waiting)
        return HealthStatus.HEALTHY, f"healthy in {len(registered)} target groups"


def factory(config: Mapping[str, Any]) -> TargetHealthCheck:
    return TargetHealthCheck(unhealthy_threshold=int(config.get("unhealthy_threshold", 3)))


@hookimpl
def immutable_sdk_add_health_checks(registry: Registry[HealthCheckFactory]) -> None:
    registry.add(
        "elb",
        factory,
        schema=SCHEMA,
        description="Target health in the fleet's target groups (one call per group per poll).",
    )
