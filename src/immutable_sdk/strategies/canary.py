"""The ``canary`` strategy: move traffic to the idle slot step by step, judged on the way.

For a fleet with ``traffic:`` slots. ``steps`` is a list of:

* ``{weight: N, bake: DURATION}``: give the new slot N% of the traffic (the previous slot the
  rest), then bake: the fleet's health checks and alarms watch the new slot for DURATION plus
  the record's TTL. Weights must increase.
* ``{pause: manual}``: wait until ``immutable-sdk promote`` (continue) or ``abort`` (roll
  back); ``{pause: DURATION}`` waits that long (``promote`` ends it early).
* ``{analysis: {type: PROVIDER, window: DURATION, metrics: [...]}}``: compare the new slot
  with the previous one on metrics an analysis provider reads (``cloudwatch-metrics``,
  ``prometheus``, or a plugin's) over a window; a failure rolls back, too few samples is
  inconclusive (pauses for an operator, or fails with ``inconclusive: fail``).
  ``{analysis: {type: cloudwatch-alarm, alarms: [...], duration: DURATION}}`` watches alarms.

Before a weight step the new slot's group is provisioned and gated: with ``canary_capacity:
proportional`` (default) it has ceil(desired x weight / 100) instances, at least 1, growing with
the weights; with ``full`` it starts at the fleet's desired capacity. After the last step the
new slot gets full capacity and 100% of the traffic, the previous slot is kept warm for
``keep_previous`` (see blue-green) and then retired. ``immutable-sdk promote --full`` skips the
remaining steps to that end. A fleet's first release has no baseline: it goes to 100% at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from immutable_sdk.plugin import (
    Analyze,
    Bake,
    CheckContext,
    ConfigProblem,
    Gate,
    Provision,
    References,
    Registry,
    RolloutChange,
    ShiftTraffic,
    Step,
    StrategyFactory,
    hookimpl,
    parse_duration,
    placeholder_problems,
)

from .bluegreen import (
    DURATION,
    KEEP_PREVIOUS,
    MANUAL_OR_DURATION,
    finish_steps,
    pause_of,
    rollback_steps,
    slots_of,
    weights,
)

# The analysis providers' registry validates each analysis block (see docs/plugins.md).
ANALYSIS: dict[str, Any] = {
    "x-plugin-block": "analysis",
    "description": "Judge the new slot with an analysis provider: cloudwatch-metrics and "
    "prometheus compare it with the previous slot, cloudwatch-alarm watches alarms.",
}
STEP: dict[str, Any] = {
    "type": "object",
    "description": "One of {weight, bake}, {pause} or {analysis}.",
    "properties": {
        "weight": {
            "type": "integer",
            "description": "Percent of the traffic on the new slot (0 to 100, increasing).",
        },
        "bake": {**DURATION, "description": "Watch this long after the shift (plus the TTL)."},
        "pause": {**MANUAL_OR_DURATION, "description": "'manual', or a duration."},
        "analysis": ANALYSIS,
    },
    "additionalProperties": False,
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Shift traffic to the idle slot in steps, with bakes, pauses and analysis.",
    "properties": {
        "type": {"const": "canary", "description": "Selects this strategy."},
        "steps": {"type": "array", "items": STEP, "minItems": 1, "description": "The steps."},
        "canary_capacity": {
            "enum": ["proportional", "full"],
            "description": "Size of the new slot's group during the steps: proportional to "
            "its weight, at least 1 instance (default), or full capacity from the start.",
        },
        "keep_previous": KEEP_PREVIOUS,
    },
    "required": ["type", "steps"],
    "additionalProperties": False,
}


class Canary:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.steps = [dict(s) for s in config["steps"]]
        self.full = config.get("canary_capacity", "proportional") == "full"
        self.keep_previous = parse_duration(config.get("keep_previous", 0))

    def capacity(self, desired: int, weight: int) -> int:
        if self.full or weight >= 100:
            return desired
        return min(desired, max(1, math.ceil(desired * weight / 100 - 1e-9)))

    def plan(self, change: RolloutChange) -> list[Step]:
        if change.rollback:
            return rollback_steps(change)
        target, source = slots_of(change, "canary")
        desired = change.desired
        if source is None:  # no baseline: the first release takes all traffic at once
            return [Provision(target, desired), Gate(slot=target), ShiftTraffic({target: 100})]
        steps: list[Step] = []
        provisioned = 0
        weight = 0

        def grow(capacity: int) -> None:
            nonlocal provisioned
            if capacity > provisioned:
                steps.extend([Provision(target, capacity), Gate(slot=target)])
                provisioned = capacity

        if self.full:
            grow(desired)
        for spec in self.steps:
            if "weight" in spec:
                weight = int(spec["weight"])
                grow(self.capacity(desired, weight))
                steps.append(ShiftTraffic(weights(target, source, weight)))
                bake = parse_duration(spec.get("bake", 0))
                if bake:
                    steps.append(Bake(bake))
            elif "pause" in spec:
                pause = pause_of(spec["pause"])
                if pause is not None:
                    steps.append(pause)
            elif "analysis" in spec:
                steps.append(Analyze(dict(spec["analysis"])))
        if weight < 100:
            grow(desired)
            steps.append(ShiftTraffic(weights(target, source, 100)))
        return steps + finish_steps(change, self.keep_previous)


DIMENSION_PLACEHOLDERS = ("target_group", "load_balancer", "auto_scaling_group", "slot")


def check(config: Mapping[str, Any], context: CheckContext) -> Iterator[ConfigProblem]:
    """The placeholders of metric dimension values (steps, weights and durations are checked
    by the spec's own checks of traffic-shifting strategies)."""
    for i, step in enumerate(config.get("steps") or ()):
        analysis = step.get("analysis") if isinstance(step, Mapping) else None
        metrics = analysis.get("metrics") if isinstance(analysis, Mapping) else None
        for j, metric in enumerate(metrics if isinstance(metrics, list) else ()):
            dimensions = metric.get("dimensions") if isinstance(metric, Mapping) else None
            for name, value in dimensions.items() if isinstance(dimensions, Mapping) else ():
                if not isinstance(value, str):
                    continue
                path = ("steps", i, "analysis", "metrics", j, "dimensions", name)
                for problem in placeholder_problems(value, DIMENSION_PLACEHOLDERS):
                    yield ConfigProblem(path, problem)


def references(config: Mapping[str, Any]) -> References:
    """The alarms that the steps' ``cloudwatch-alarm`` analyses watch."""
    alarms: list[str] = []
    for step in config.get("steps") or ():
        analysis = step.get("analysis") if isinstance(step, Mapping) else None
        if isinstance(analysis, Mapping) and analysis.get("type") == "cloudwatch-alarm":
            alarms += [str(a) for a in analysis.get("alarms") or ()]
    return References(alarms=alarms)


@hookimpl
def immutable_sdk_add_strategies(registry: Registry[StrategyFactory]) -> None:
    registry.add(
        "canary",
        Canary,
        schema=SCHEMA,
        references=references,
        description="Shift traffic to the idle slot in weighted steps with bakes, pauses and "
        "metric analysis; keep the previous slot warm.",
        check=check,
    )
