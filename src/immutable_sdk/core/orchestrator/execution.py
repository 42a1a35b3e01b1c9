"""An execution's input from a plan, and its name from the plan's digest.

The input carries everything the generic state machine walks: the waves in order, each with
its units (the plan's items that change something), its bake and its parallelism. The name is
a digest of what the plan would do and of what AWS showed the planner (``planfile``'s
fingerprints), so the same plan started twice is one execution, and a plan made after the
rollout (nothing left to do, or other releases running) is another.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...results import Plan
from ...spec.model import Spec
from ..planfile import fingerprints

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


def execution_input(
    spec: Spec, plan: Plan, *, parallelism: int = 10, poll_seconds: int = 30
) -> ExecutionInput:
    """The execution of ``plan``: a wave per plan wave (or one), the changing units in each."""
    changing = [i for i in plan.items if i.action != "noop"]
    prints = fingerprints(spec, plan)
    order = [str(w["name"]) for w in plan.waves] or ["all"]
    bakes = {str(w["name"]): float(w.get("bake", 0.0)) for w in plan.waves}
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
                "parallelism": max(1, min(parallelism, len(waves[name]))),
                # the last wave's bake would hold nothing back
                "bake_seconds": math.ceil(bakes.get(name, 0.0)) if i < len(kept) - 1 else 0,
            }
            for i, name in enumerate(kept)
        ],
    }
    return ExecutionInput(execution_name(spec.name, digest), digest, document)


def execution_name(project: str, digest: str) -> str:
    """``<project>-<digest>``, cut to fit: the digest's first 32 hex digits always stay."""
    head = project[: NAME_LIMIT - 33]
    return f"{head}-{digest[:32]}"
