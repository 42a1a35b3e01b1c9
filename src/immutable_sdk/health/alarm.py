"""The ``cloudwatch-alarm`` health check: named CloudWatch alarms must not be in ALARM.

One ``DescribeAlarms`` per poll for all named alarms (metric and composite; 100 names a call,
AWS's limit), shared by every fleet polling at the same moment (``shared_coalescer``): fifty
fleets baking at once read their alarms in one call. Any alarm in ALARM makes the release bad at
once; a named alarm that does not exist does too, since a gate that watches nothing would pass
every release. INSUFFICIENT_DATA (an alarm whose metric has no data points yet, common right
after a release starts) is healthy by default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from immutable_sdk.plugin import (
    GateTargets,
    HealthCheckFactory,
    HealthReport,
    HealthStatus,
    PluginContext,
    References,
    Registry,
    hookimpl,
    shared_coalescer,
)

BATCH = 100  # DescribeAlarms accepts at most 100 alarm names
INSUFFICIENT = {
    "ok": HealthStatus.HEALTHY,
    "pending": HealthStatus.PENDING,
    "fail": HealthStatus.UNHEALTHY,
}

SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "description": "CloudWatch alarms that must not be in ALARM while the release is judged.",
    "properties": {
        "type": {"const": "cloudwatch-alarm", "description": "Selects this check."},
        "alarms": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 255},
            "minItems": 1,
            "uniqueItems": True,
            "description": "Names of the alarms (metric or composite) to watch.",
        },
        "insufficient_data": {
            "enum": sorted(INSUFFICIENT),
            "default": "ok",
            "description": "What an alarm in INSUFFICIENT_DATA means: ok (default), pending "
            "(wait for data) or fail.",
        },
    },
    "required": ["type", "alarms"],
    "additionalProperties": False,
}


def _fetch(cloudwatch: Any) -> Any:
    def fetch(names: list[str]) -> dict[str, Mapping[str, Any] | None]:
        found: dict[str, Mapping[str, Any] | None] = dict.fromkeys(names)
        for start in range(0, len(names), BATCH):
            response = cloudwatch.describe_alarms(
                AlarmNames=names[start : start + BATCH],
                AlarmTypes=["MetricAlarm", "CompositeAlarm"],
            )
            for alarm in [*response.get("MetricAlarms", []), *response.get("CompositeAlarms", [])]:
                if alarm["AlarmName"] in found:
                    found[str(alarm["AlarmName"])] = alarm
        return found

    return fetch


class AlarmCheck:
    def __init__(self, alarms: Sequence[str], insufficient_data: str = "ok") -> None:
        self.alarms = list(dict.fromkeys(alarms))
        self.insufficient_data = INSUFFICIENT[insufficient_data]

    def check(self, targets: GateTargets, ctx: PluginContext) -> HealthReport:
        found = shared_coalescer(ctx.client("cloudwatch"), "alarms", _fetch).get(self.alarms)
        details: dict[str, str] = {}
        verdicts: dict[str, HealthStatus] = {}
        problems: list[str] = []
        for name in self.alarms:
            alarm = found.get(name)
            if alarm is None:
                verdicts[name] = HealthStatus.UNHEALTHY
                details[name] = f"does not exist in {ctx.region}"
                problems.append(f"alarm {name!r} does not exist in {ctx.region}")
                continue
            state = str(alarm.get("StateValue", "INSUFFICIENT_DATA"))
            reason = str(alarm.get("StateReason", "")).strip()
            details[name] = f"{state}: {reason}" if reason else state
            if state == "ALARM":
                verdicts[name] = HealthStatus.UNHEALTHY
                problems.append(f"alarm {name!r} is in ALARM" + (f": {reason}" if reason else ""))
            elif state == "OK":
                verdicts[name] = HealthStatus.HEALTHY
            else:
                verdicts[name] = self.insufficient_data
                if verdicts[name] is HealthStatus.UNHEALTHY:
                    problems.append(f"alarm {name!r} has insufficient data")
        if problems:
            return HealthReport(HealthStatus.UNHEALTHY, details, "; ".join(problems))
        waiting = [n for n, v in verdicts.items() if v is HealthStatus.PENDING]
        if waiting:
            summary = f"waiting for data: {', '.join(waiting)}"
            return HealthReport(HealthStatus.PENDING, details, summary)
        return HealthReport(HealthStatus.HEALTHY, details, f"{len(self.alarms)} alarms not firing")


def factory(config: Mapping[str, Any]) -> AlarmCheck:
    return AlarmCheck(
        [str(a) for a in config["alarms"]],
        insufficient_data=str(config.get("insufficient_data", "ok")),
    )


def references(config: Mapping[str, Any]) -> References:
    """The alarms the check watches (the sandbox creates them)."""
    return References(alarms=[str(a) for a in config.get("alarms") or ()])


@hookimpl
def immutable_sdk_add_health_checks(registry: Registry[HealthCheckFactory]) -> None:
    registry.add(
        "cloudwatch-alarm",
        factory,
        schema=SCHEMA,
        description="Named CloudWatch alarms must not be in ALARM (one call per poll).",
        references=references,
    )
