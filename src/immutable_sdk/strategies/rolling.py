"""The ``rolling`` strategy: replace a fleet's instances in place, batch by batch.

Each batch launches new instances (up to ``max_surge`` above desired capacity), gates them on
the fleet's health checks, then retires as many instances of the previous release. Healthy
in-service capacity never falls below ``min_healthy`` percent of desired: with 100% every batch
launches before it terminates; below 100% and with no surge, batches retire first.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from immutable_sdk.plugin import (
    Bake,
    CheckContext,
    ConfigProblem,
    Gate,
    Launch,
    Pause,
    Registry,
    Retire,
    RolloutChange,
    SpecError,
    Step,
    StrategyFactory,
    hookimpl,
    parse_duration,
    parse_size,
)

SIZE = {
    "type": ["integer", "string"],
    "format": "size",
    "description": "A count (3) or a percentage of desired capacity ('25%').",
}
DURATION = {
    "type": ["number", "string"],
    "format": "duration",
    "description": "A duration: seconds, or a string such as '30s', '5m', '2h', '1h30m'.",
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Replace instances in place, batch by batch, gated on health checks.",
    "properties": {
        "type": {"const": "rolling", "description": "Selects this strategy."},
        "batch_size": {
            **SIZE,
            "format": "positive-size",
            "description": "Instances replaced per batch: a count or a percentage of desired "
            "capacity (default 25%).",
        },
        "min_healthy": {
            **SIZE,
            "description": "Healthy in-service capacity kept at every moment, as a percentage "
            "of desired (default 100%: launch before terminate).",
        },
        "max_surge": {
            **SIZE,
            "description": "Instances allowed above desired capacity during the rollout "
            "(default: the batch size).",
        },
        "pause": {**DURATION, "description": "Wait between batches (default 0s)."},
        "bake": {
            **DURATION,
            "description": "After each batch passes its gate, keep watching the health checks "
            "and alarms this long before retiring old instances (default 0s).",
        },
    },
    "required": ["type"],
    "additionalProperties": False,
}


class Rolling:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.batch_size = parse_size(config.get("batch_size", "25%"))
        self.min_healthy = parse_size(config.get("min_healthy", "100%"))
        surge = config.get("max_surge")
        self.max_surge = parse_size(surge) if surge is not None else None
        self.pause = parse_duration(config.get("pause", 0))
        self.bake = parse_duration(config.get("bake", 0))

    def plan(self, change: RolloutChange) -> list[Step]:
        desired = change.desired
        if change.current_instances == 0:
            missing = desired - change.target_instances
            if missing <= 0:
                return []
            return [Launch(missing), Gate()] + ([Bake(self.bake)] if self.bake else [])
        if change.rollback:
            return self._rollback(change)
        batch = self.batch_size.of(desired, minimum=1)
        surge = self._surge(desired)
        keep = self._min_healthy(desired)
        blocked = self.blocked(desired)
        if blocked:
            raise SpecError(f"fleets.{change.fleet.name}.strategy: {blocked}")
        old, new = change.current_instances, change.target_instances
        steps: list[Step] = []
        while old > 0 or new < desired:
            room = desired + surge - (old + new)
            launch = min(batch, desired - new, max(room, 0))
            if launch > 0:
                steps += [Launch(launch), Gate()]
                if self.bake:
                    steps.append(Bake(self.bake))
                new += launch
            # Retire what exceeds desired capacity, and while nothing could be launched, as
            # much of a batch as min_healthy allows.
            excess = max(0, old + new - desired)
            retire = min(old, excess if launch > 0 else min(batch, old + new - keep))
            if launch == 0 and retire <= 0:
                raise SpecError(
                    f"fleets.{change.fleet.name}.strategy: cannot make progress with "
                    f"min_healthy {self.min_healthy} and max_surge {surge}"
                )
            if retire > 0:
                steps.append(Retire(retire))
                old -= retire
            if self.pause and (old > 0 or new < desired):
                steps.append(Pause(self.pause))
        return steps

    def blocked(self, desired: int) -> str | None:
        """Why no instance could ever be replaced at this desired capacity (None: it can)."""
        if desired > 0 and self._surge(desired) == 0 and self._min_healthy(desired) >= desired:
            return (
                f"max_surge {self.max_surge} with min_healthy {self.min_healthy} leaves no room "
                f"to replace an instance of {desired}: none may be added and every one must stay "
                "in service; allow a surge (max_surge: 1) or lower min_healthy"
            )
        return None

    def _surge(self, desired: int) -> int:
        if self.max_surge is None:
            return self.batch_size.of(desired, minimum=1)
        return self.max_surge.of(desired)

    def _min_healthy(self, desired: int) -> int:
        if self.min_healthy.percent:
            return self.min_healthy.of(desired, round_up=True)
        return min(self.min_healthy.value, desired)

    def _rollback(self, change: RolloutChange) -> list[Step]:
        # Restore the previous release at full capacity first, then retire every instance of
        # the failed release: those are not counted as healthy capacity.
        steps: list[Step] = []
        missing = change.desired - change.target_instances
        if missing > 0:
            steps += [Launch(missing), Gate()]
        if change.current_instances:
            steps.append(Retire(change.current_instances))
        return steps


def check(config: Mapping[str, Any], context: CheckContext) -> Iterator[ConfigProblem]:
    """Sizes that cannot work with the fleet's capacity (the schema checked each alone)."""
    capacity = context.fleet.get("capacity")
    if not isinstance(capacity, Mapping):
        return
    high = capacity.get("max")
    desired = capacity.get("desired", capacity.get("min"))
    if not isinstance(high, int) or not isinstance(desired, int):
        return  # the schema's and the capacity check's problem
    rolling = Rolling(config)
    for key, size in (("batch_size", rolling.batch_size), ("min_healthy", rolling.min_healthy)):
        if key in config and not size.percent and size.value > high:
            yield ConfigProblem(
                (key,),
                f"{key} {size.value} is more than the fleet's capacity.max ({high}); use at "
                f"most {high}, or a percentage",
            )
    blocked = rolling.blocked(desired)
    if blocked:
        yield ConfigProblem(("max_surge" if "max_surge" in config else "min_healthy",), blocked)


@hookimpl
def immutable_sdk_add_strategies(registry: Registry[StrategyFactory]) -> None:
    registry.add(
        "rolling",
        Rolling,
        schema=SCHEMA,
        description="Replace instances in place, batch by batch, gated on health checks.",
        check=check,
    )
