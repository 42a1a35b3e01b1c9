"""The ``linear`` strategy: move traffic to the new slot in equal increments, one per interval.

Like CodeDeploy's ``Linear10PercentEvery1Minute``, for a fleet with ``traffic:`` slots:

1. provision the idle slot with the new release at full capacity, and gate it;
2. give it ``percent`` of the traffic, then bake for ``interval``: the fleet's health checks (and
   alarm checks) keep watching, and a failure rolls back; with ``analysis``, also watch its
   CloudWatch alarms for ``analysis.duration``; repeat with 2 x ``percent``, 3 x ``percent``...
3. at 100%, keep the previous slot warm for ``keep_previous`` (an instant rollback is one weight
   change), then retire it.

A fleet's first release has nothing to shift from: it is provisioned, gated and given all the
traffic at once. Rolling back puts all traffic on the previous slot and retires the new one.
The strategy only plans steps; the engine runs them (it never calls AWS itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from immutable_sdk.plugin import (
    Analyze,
    Bake,
    Gate,
    Provision,
    References,
    Registry,
    Retire,
    RolloutChange,
    ShiftTraffic,
    SpecError,
    Step,
    StrategyFactory,
    hookimpl,
    parse_duration,
)

DURATION: dict[str, Any] = {"type": ["string", "number"], "format": "duration"}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Shift traffic to the new slot by `percent` every `interval`, baking (and "
    "optionally watching alarms) at each increment.",
    "properties": {
        "type": {"const": "linear", "description": "Selects this strategy."},
        "percent": {
            "type": "integer",
            "minimum": 1,
            "maximum": 100,
            "description": "Percent of the traffic moved to the new slot at each increment "
            "(default 10).",
        },
        "interval": {
            **DURATION,
            "description": "How long each increment bakes before the next one: the fleet's "
            "health checks watch the new slot meanwhile (default 1m).",
        },
        "analysis": {
            "type": "object",
            "description": "Also judge each increment on CloudWatch alarms: any alarm in "
            "ALARM during `duration` fails the step and rolls back.",
            "properties": {
                "alarms": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "minItems": 1,
                    "description": "Alarm names.",
                },
                "duration": {
                    **DURATION,
                    "format": "positive-duration",
                    "description": "How long to watch them (default 1m).",
                },
            },
            "required": ["alarms"],
            "additionalProperties": False,
        },
        "keep_previous": {
            **DURATION,
            "description": "How long the previous slot stays warm after all traffic moved, "
            "for an instant rollback, before it is retired (default 0).",
        },
    },
    "required": ["type"],
    "additionalProperties": False,
}


def increments(percent: int) -> list[int]:
    """The new slot's share after each increment: ``percent``, twice that, ..., then 100."""
    shares = list(range(percent, 100, percent))
    return [*shares, 100]


class Linear:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.percent = int(config.get("percent", 10))
        self.interval = parse_duration(config.get("interval", "1m"))
        self.keep_previous = parse_duration(config.get("keep_previous", 0))
        analysis = config.get("analysis")
        self.analysis: dict[str, Any] | None = None
        if analysis is not None:
            self.analysis = {
                "type": "cloudwatch-alarm",
                "alarms": list(analysis["alarms"]),
                "duration": analysis.get("duration", "1m"),
            }

    def plan(self, change: RolloutChange) -> list[Step]:
        if change.rollback:
            return self._rollback(change)
        target, source = change.target_slot, change.source_slot
        if target is None:
            raise SpecError(
                f"fleets.{change.fleet.name}.strategy: 'linear' shifts traffic between slots; "
                f"give the fleet traffic slots (fleets.{change.fleet.name}.traffic)"
            )
        steps: list[Step] = [Provision(target, change.desired), Gate(slot=target)]
        if source is None:  # a new fleet: nothing to shift from
            return [*steps, ShiftTraffic({target: 100})]
        for share in increments(self.percent):
            steps.append(ShiftTraffic({target: share, source: 100 - share}))
            if share == 100:
                break
            if self.interval:
                steps.append(Bake(self.interval))
            if self.analysis is not None:
                steps.append(Analyze(self.analysis))
        if self.keep_previous:
            steps.append(Bake(self.keep_previous))
        steps.append(Retire(change.current_instances, slot=source))
        return steps

    @staticmethod
    def _rollback(change: RolloutChange) -> list[Step]:
        failed = change.source_slot
        if failed is None:
            return []
        steps: list[Step] = []
        if change.target_slot is not None:
            steps.append(ShiftTraffic({change.target_slot: 100, failed: 0}))
        steps.append(Retire(change.current_instances, slot=failed))
        return steps


def references(config: Mapping[str, Any]) -> References:
    """The alarms ``analysis`` watches: they must exist (the sandbox creates them)."""
    analysis = config.get("analysis") or {}
    return References(alarms=[str(a) for a in analysis.get("alarms") or ()])


@hookimpl
def immutable_sdk_add_strategies(registry: Registry[StrategyFactory]) -> None:
    registry.add(
        "linear",
        Linear,
        schema=SCHEMA,
        references=references,
        description="Shift traffic to the new slot by N% every interval, baking at each "
        "increment (like CodeDeploy's Linear10PercentEvery1Minute).",
    )
