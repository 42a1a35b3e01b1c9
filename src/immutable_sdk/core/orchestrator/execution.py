"""An execution's input from a plan, and its name from the plan's digest.

The input carries everything the generic state machine walks: the waves in order, each with its
units (the plan's items that change something) and its stages (its bake is watched by the
units' ticks: see ``definition``). A wave's stages run one after the other, the units of a
stage in parallel (at most ``parallelism`` at once): a unit's stage comes after the stages of
every unit of its wave it ``depends_on`` (its dependency level), and a stage holds units of at
most ``max_regions_in_flight`` regions (a spec without ``waves:`` has one wave, one region at a
time). A stage lists its units as indices into the wave's ``units``. The name is a digest of
what the plan would do and of what AWS showed the planner (``planfile``'s fingerprints), so the
same plan started twice is one execution, and a plan made after the rollout (nothing left to
do, or other releases running) is another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import UsageError
from ...results import Plan
from ...spec.model import Spec
from ..planfile import fingerprints
from ..waves import assign_waves

NAME_LIMIT = 80  # Step Functions execution names: 1-80 of [A-Za-z0-9_-]


@dataclass(frozen=True)
class ExecutionInput:
    """What ``StartExecution`` gets for a plan: its name and its input document."""

    name: str
    plan_digest: str
    document: dict[str, Any]

    @property
    def units(self) -> list[str]:
        return [u["key"] for w in self.document["waves"] for u in w["units"]]

    def to_json(self) -> str:
        return json.dumps(self.document, sort_keys=True, separators=(",", ":"))


def plan_digest(spec: Spec, plan: Plan, units: Sequence[str]) -> str:
    """A digest of the units' plan items, specs and AWS observations, and of the waves."""
    prints = fingerprints(spec, plan)
    data = {
        "project": spec.name,
        "items": [
            {
                **{k: v for k, v in plan.item(key).to_dict().items() if k != "reasons"},
                "spec": prints[key]["spec"],
                "aws": prints[key]["aws"],
            }
            for key in units
        ],
        "waves": [dict(w) for w in plan.waves],
    }
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def stages(
    units: Sequence[Mapping[str, Any]],
    depends_on: Mapping[str, Sequence[str]],
    *,
    parallelism: int,
    max_regions_in_flight: int = 0,
) -> list[dict[str, Any]]:
    """A wave's stages: its units (``key`` and ``region``) by dependency level, each level cut
    into groups of at most ``max_regions_in_flight`` regions (0: no limit), in the order the
    regions first appear. Dependencies on units outside ``units`` are ignored here (an
    earlier wave's have ended; the spec's checks refuse a later wave's)."""
    index = {str(u["key"]): i for i, u in enumerate(units)}
    level: dict[str, int] = {}

    def level_of(key: str, path: tuple[str, ...]) -> int:
        if key in path:
            cycle = " -> ".join((*path[path.index(key) :], key))
            raise UsageError(f"depends_on makes a cycle: {cycle}")
        if key not in level:
            deps = [d for d in depends_on.get(key, ()) if d in index]
            level[key] = 1 + max((level_of(d, (*path, key)) for d in deps), default=-1)
        return level[key]

    out: list[dict[str, Any]] = []
    for depth in sorted({level_of(str(u["key"]), ()) for u in units}):
        members = [u for u in units if level[str(u["key"])] == depth]
        regions = list(dict.fromkeys(str(u["region"]) for u in members))
        size = max_regions_in_flight if max_regions_in_flight > 0 else len(regions)
        for first in range(0, len(regions), size):
            chunk = set(regions[first : first + size])
            picked = [index[str(u["key"])] for u in members if u["region"] in chunk]
            out.append({"units": picked, "parallelism": max(1, min(parallelism, len(picked)))})
    return out


def execution_input(
    spec: Spec, plan: Plan, *, parallelism: int = 10, poll_seconds: int = 30
) -> ExecutionInput:
    """The execution of ``plan``: a wave per plan wave (or one), the changing units in each,
    in stages (``stages``)."""
    changing = [i for i in plan.items if i.action != "noop"]
    prints = fingerprints(spec, plan)
    order = [str(w["name"]) for w in plan.waves] or ["all"]
    # as in-process apply schedules them (``waves``): a spec without waves has one wave
    # ("all"), one region at a time
    placed = assign_waves(spec, [(i.fleet, i.region or spec.region) for i in changing])
    depends_on = {u.key: u.depends_on for w in placed for u in w.units}
    regions_in_flight = {w.name: w.max_regions_in_flight for w in placed}
    waves: dict[str, list[dict[str, Any]]] = {name: [] for name in order}
    for item in changing:
        wave = item.wave if item.wave in waves else order[-1]
        waves[wave].append(
            {
                "key": item.key,
                "fleet": item.fleet,
                "region": item.region or spec.region,
                "action": item.action,
                "release": item.release,
                "spec_digest": prints[item.key]["spec"],
            }
        )
    kept = [name for name in order if waves[name]]
    digest = plan_digest(spec, plan, [i.key for i in changing])
    document = {
        "project": spec.name,
        "plan": digest,
        "poll_seconds": poll_seconds,
        "waves": [
            {
                "name": name,
                "units": waves[name],
                "stages": stages(
                    waves[name],
                    depends_on,
                    parallelism=parallelism,
                    max_regions_in_flight=regions_in_flight.get(name, 0),
                ),
            }
            for name in kept
        ],
    }
    return ExecutionInput(execution_name(spec.name, digest), digest, document)


def execution_name(project: str, digest: str) -> str:
    """``<project>-<digest>``, cut to fit: the digest's first 32 hex digits always stay."""
    head = project[: NAME_LIMIT - 33]
    return f"{head}-{digest[:32]}"
