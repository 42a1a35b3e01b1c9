"""From a spec to waves of units: which fleet rolls out in which region, in what order.

A unit is one fleet in one region (its key: the fleet's name in the spec's region,
``fleet@region`` elsewhere). A unit goes to the first wave of ``spec.waves`` whose ``fleets``
select its fleet and whose ``regions`` select its region; a spec without waves has one wave of
every unit, one region at a time. Within a wave the scheduler keeps at most
``max_regions_in_flight`` regions with units running (see ``orchestrate``). A unit depends on
the units of its fleet's ``depends_on`` in its own region, or in every region of a dependency
that does not deploy to its region.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from ..spec.model import Spec


@dataclass(frozen=True)
class Unit:
    """One fleet in one region: what one worker rolls out."""

    key: str  # the result's key: the fleet's name
    fleet: str
    region: str
    depends_on: tuple[str, ...] = ()  # keys of units to finish first


@dataclass(frozen=True)
class Wave:
    name: str
    units: tuple[Unit, ...]
    bake: float = 0.0
    max_regions_in_flight: int = 0  # 0: no limit
    stop_on_failure: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fleets": [u.key for u in self.units],
            "regions": sorted({u.region for u in self.units}),
            "bake": self.bake,
            "max_regions_in_flight": self.max_regions_in_flight,
            "stop_on_failure": self.stop_on_failure,
        }


def _selects(patterns: Sequence[str], value: str) -> bool:
    return any(fnmatchcase(value, p) for p in patterns)


def assign_waves(spec: Spec, fleets: Sequence[str | tuple[str, str]]) -> list[Wave]:
    """Group units (in plan order) into the spec's waves; one wave when it has none.

    ``fleets``: fleet names (in the spec's region) or (fleet, region) pairs. Fleets the spec
    no longer names (destroy items) go to the last wave.
    """
    pairs = [(f, spec.region) if isinstance(f, str) else f for f in fleets]

    def deps(name: str, region: str) -> tuple[str, ...]:
        fleet = spec.fleets.get(name)
        out: list[str] = []
        for dep in fleet.depends_on if fleet is not None else ():
            other = spec.fleets.get(dep)
            regions = spec.regions_of(other) if other is not None else (region,)
            out += [spec.unit_key(dep, r) for r in regions if r == region or region not in regions]
        return tuple(out)

    def unit(name: str, region: str) -> Unit:
        key = spec.unit_key(name, region)
        return Unit(key=key, fleet=name, region=region, depends_on=deps(name, region))

    if not spec.waves:  # one wave with a wave's defaults: one region at a time
        return [Wave("all", tuple(unit(f, r) for f, r in pairs), max_regions_in_flight=1)]
    groups: list[list[Unit]] = [[] for _ in spec.waves]
    for name, region in pairs:
        index = len(spec.waves) - 1
        if name in spec.fleets:
            for i, w in enumerate(spec.waves):
                if _selects(w.fleets, name) and _selects(w.regions, region):
                    index = i
                    break
        groups[index].append(unit(name, region))
    return [
        Wave(
            name=w.name,
            units=tuple(g),
            bake=w.bake,
            max_regions_in_flight=w.max_regions_in_flight,
            stop_on_failure=w.stop_on_failure,
        )
        for w, g in zip(spec.waves, groups, strict=True)
    ]
