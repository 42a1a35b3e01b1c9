"""The ``blue-green`` strategy: a full new slot, one shift of all traffic, the old slot kept warm.

For a fleet with ``traffic:`` slots. A release goes to the idle slot (the one without traffic):

1. provision the idle slot's Auto Scaling group with the new release at full capacity;
2. gate it on the fleet's health checks;
3. optionally pause (``promote_after``: a duration, or ``manual`` to wait for
   ``immutable-sdk promote``);
4. shift 100% of the traffic to it in one Route 53 change;
5. bake (``bake``): the health checks and alarms keep watching the new slot; the record's TTL
   is added to the first bake after every shift, since clients move only as DNS caches expire;
6. keep the previous slot warm for ``keep_previous`` while the new slot is watched as in a
   bake: a failure, or ``immutable-sdk abort``, is an instant rollback (one weight change back);
   ``immutable-sdk promote`` ends the wait early;
7. retire the previous slot's group (never before the TTL has passed since the shift).

A fleet's first release has no previous slot: it is provisioned, gated and given 100% of the
traffic, without a bake (as with canary): a bake watches for a reason to go back, and there is
nothing to go back to. Rolling back puts 100% back on the previous slot (after checking that
its targets are healthy) and then retires the new slot's group; when there was no previous
slot, the records are removed and the new group retired.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from immutable_sdk.plugin import (
    Bake,
    Gate,
    Pause,
    Provision,
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

DURATION: dict[str, Any] = {
    "type": ["string", "number"],
    "format": "duration",
    "minimum": 0,
    "x-expect": "a duration like '30s', '5m', '2h' or '1h30m'",
}
POSITIVE_DURATION: dict[str, Any] = {**DURATION, "format": "positive-duration"}
MANUAL_OR_DURATION: dict[str, Any] = {
    "anyOf": [{"const": "manual"}, {"type": ["string", "number"], "format": "duration"}],
    "x-expect": "'manual' or a duration like '30s', '5m', '2h' or '1h30m'",
}
KEEP_PREVIOUS = {
    **DURATION,
    "description": "How long the previous slot stays warm after all traffic moved, for an "
    "instant rollback (one weight change); meanwhile the health checks keep watching the new "
    "slot and `immutable-sdk abort` rolls back, `immutable-sdk promote` retires it at once. "
    "Default 0s: retire as soon as the record's TTL has passed.",
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Provision the idle traffic slot at full capacity, gate it, shift all "
    "traffic in one change, bake, keep the previous slot warm, retire it.",
    "properties": {
        "type": {"const": "blue-green", "description": "Selects this strategy."},
        "promote_after": {
            **MANUAL_OR_DURATION,
            "description": "Pause between the gate and the shift: a duration, or 'manual' to "
            "wait for `immutable-sdk promote` (default: shift at once).",
        },
        "bake": {
            **DURATION,
            "description": "After the shift, watch the health checks and alarms this long "
            "(plus the record's TTL) before keeping the previous slot warm (default 0s).",
        },
        "keep_previous": KEEP_PREVIOUS,
    },
    "required": ["type"],
    "additionalProperties": False,
}


def slots_of(change: RolloutChange, strategy: str) -> tuple[str, str | None]:
    """(target slot, source slot) of a change, or a SpecError when the fleet has no slots."""
    if change.target_slot is None:
        raise SpecError(
            f"fleets.{change.fleet.name}.strategy: {strategy!r} needs traffic slots "
            f"(fleets.{change.fleet.name}.traffic)"
        )
    return change.target_slot, change.source_slot


def weights(target: str, source: str | None, weight: int) -> dict[str, int]:
    """``weight`` on the target slot and the rest on the source slot."""
    out = {target: weight}
    if source is not None:
        out[source] = 100 - weight
    return out


def rollback_steps(change: RolloutChange) -> list[Step]:
    """All traffic back on the previous slot first, then the failed slot's group retired."""
    failed = change.source_slot
    if failed is None:
        return []
    steps: list[Step] = []
    if change.target_slot is not None:
        steps.append(ShiftTraffic({change.target_slot: 100, failed: 0}))
    steps.append(Retire(change.current_instances, slot=failed))
    return steps


def finish_steps(change: RolloutChange, keep_previous: float) -> list[Step]:
    """After all traffic moved: keep the previous slot warm, then retire it."""
    source = change.source_slot
    if source is None:
        return []
    steps: list[Step] = []
    if keep_previous > 0:
        steps.append(Bake(keep_previous))
    steps.append(Retire(change.current_instances, slot=source))
    return steps


def pause_of(value: Any) -> Pause | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip() == "manual":
        return Pause(manual=True)
    seconds = parse_duration(value)
    return Pause(seconds) if seconds > 0 else None


class BlueGreen:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.promote_after = pause_of(config.get("promote_after"))
        self.bake = parse_duration(config.get("bake", 0))
        self.keep_previous = parse_duration(config.get("keep_previous", 0))

    def plan(self, change: RolloutChange) -> list[Step]:
        if change.rollback:
            return rollback_steps(change)
        target, source = slots_of(change, "blue-green")
        steps: list[Step] = [Provision(target, change.desired), Gate(slot=target)]
        if self.promote_after is not None and source is not None:
            steps.append(self.promote_after)
        steps.append(ShiftTraffic(weights(target, source, 100)))
        if self.bake and source is not None:  # a first release has nothing to roll back to
            steps.append(Bake(self.bake))
        return steps + finish_steps(change, self.keep_previous)


@hookimpl
def immutable_sdk_add_strategies(registry: Registry[StrategyFactory]) -> None:
    registry.add(
        "blue-green",
        BlueGreen,
        schema=SCHEMA,
        description="Provision the idle traffic slot, gate it, shift all traffic at once, "
        "keep the previous slot warm for an instant rollback.",
    )
