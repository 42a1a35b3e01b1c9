"""What a rollout's report draws, journaled while the rollout runs (``note`` entries).

Reports (``immutable-sdk history --report``) are drawn from the journal alone, never by
reading AWS afterwards, so the runners journal what the pictures need as it happens:

* ``{"note": "context", ...}`` once per run of the runner: the fleet's capacity, the
  ``min_healthy`` count the strategy keeps, the strategy's config, the region and the
  traffic record's TTL (what the report's reference lines come from);
* ``{"note": "capacity", ...}`` whenever an observation differs from the last one
  journaled: desired, in service and healthy instances, by release, and per traffic slot
  its weight and counts (the capacity and weight charts);
* ``{"note": "analysis", ...}`` for every judgement of a canary analysis, with the values,
  sample counts and thresholds of each metric (the analysis charts); ``{"note": "alarms"}``
  when the watched alarms' states change.

Only changes are journaled, so a long wait costs no writes while nothing moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...units import parse_size

if TYPE_CHECKING:
    from ...spec.model import FleetSpec
    from .runner import RolloutRunner


def min_healthy(fleet: FleetSpec, desired: int | None = None) -> int | None:
    """The healthy in-service count the fleet's strategy keeps during a rollout (None when
    its strategy names no ``min_healthy``: traffic-slot strategies keep the live slot whole).
    ``desired``: the capacity the rollout aims for (``desired: managed``: the group's live
    value at its start), else the spec's."""
    desired = fleet.capacity.desired if desired is None else desired
    value = fleet.strategy.config.get("min_healthy")
    if value is None:
        return desired if fleet.strategy.type == "rolling" else None
    try:
        size = parse_size(value)
    except ValueError:
        return None
    return size.of(desired, round_up=True) if size.percent else min(size.value, desired)


def context(fleet: FleetSpec, region: str, unit: str, desired: int | None = None) -> dict[str, Any]:
    """The ``context`` note's data for ``fleet`` (``desired``: as for ``min_healthy``)."""
    cap = fleet.capacity
    desired = cap.desired if desired is None else desired
    traffic = dict(fleet.traffic or {})
    route53 = traffic.get("route53") or {}
    return {
        "note": "context",
        "unit": unit,
        "region": region,
        "capacity": {"min": cap.min, "desired": desired, "max": cap.max},
        "min_healthy": min_healthy(fleet, desired),
        "strategy": {"type": fleet.strategy.type, **dict(fleet.strategy.config)},
        "slots": sorted((traffic.get("slots") or {}).keys()),
        "ttl": route53.get("ttl"),
        "health": {
            "timeout": fleet.health.timeout,
            "grace": fleet.health.grace,
            "checks": [c.type for c in fleet.health.checks],
        },
    }


@dataclass
class Samples:
    """The last sample of each kind a runner journaled (so only changes are written)."""

    last: dict[str, Any] = field(default_factory=dict)

    def context(self, runner: RolloutRunner) -> None:
        if "context" in self.last:
            return
        fleet = runner.fleet
        data = context(fleet, runner.ctx.region, runner.ctx.unit(fleet.name), runner.capacity())
        self.last["context"] = data
        self._write(runner, -1, data)

    def capacity(self, runner: RolloutRunner, sample: Mapping[str, Any]) -> None:
        self.changed(runner, "capacity", sample)

    def changed(self, runner: RolloutRunner, note: str, sample: Mapping[str, Any]) -> None:
        """Journal ``sample`` as a ``note`` entry when it differs from the last one."""
        data = {"note": note, **dict(sample)}
        if self.last.get(note) == data:
            return
        self.last[note] = data
        self._write(runner, runner.current, data)

    def always(self, runner: RolloutRunner, note: str, sample: Mapping[str, Any]) -> None:
        data = {"note": note, **dict(sample)}
        self.last[note] = data
        self._write(runner, runner.current, data)

    @staticmethod
    def _write(runner: RolloutRunner, index: int, data: Mapping[str, Any]) -> None:
        runner.still_ours()
        runner.state.append_journal(runner.info.id, index, "note", runner.ctx.clock.now(), data)
