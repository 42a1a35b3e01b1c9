"""Saved plans: ``plan --out FILE``, then ``apply FILE`` applies that plan or refuses.

Terraform's saved plan carries the actions; here the plan is made again at apply time and must
match what was saved: per fleet, a digest of its spec (the fleet's settings and its image's,
locations left out, so moving lines or comments changes nothing) and a digest of what AWS
showed the planner (the release in service, capacity, instance count, the image's AMIs). Any
difference, or a fleet that appeared or went, refuses the apply with what changed, so that
what runs is exactly what was reviewed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StalePlan, UsageError
from ..results import Plan, PlanItem
from ..spec.model import Spec

KIND = "immutable-sdk-plan"
VERSION = 1
__all__ = ["SavedPlan", "StalePlan", "fingerprints", "load", "save"]


def _plain(value: Any) -> Any:
    """JSON-able data of a spec node without its source locations."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name != "location"
        }
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def observed(plan: Plan, item: PlanItem) -> dict[str, Any]:
    """What AWS (and the state) showed the planner about ``item``'s fleet."""
    artifact = plan.artifacts.get(item.image or "")
    return {
        "current_release": item.current_release,
        "current_capacity": list(item.current_capacity) if item.current_capacity else None,
        "instances": item.instances,
        "image_amis": dict(artifact.amis) if artifact is not None else None,
        # a quarantine or pin that holds the fleet (or none): lifted since, the apply would
        # roll out what the saved plan showed as held
        "hold": item.hold.get("kind") if item.hold else None,
    }


def spec_digest(spec: Spec, fleet_name: str) -> str:
    """A digest of the fleet's settings and its image's, locations left out."""
    fleet = spec.fleets.get(fleet_name)
    image = spec.images.get(fleet.image) if fleet is not None else None
    return _digest({"fleet": _plain(fleet), "image": _plain(image)})


def fingerprints(spec: Spec, plan: Plan) -> dict[str, dict[str, Any]]:
    """Per unit key: the digests of its spec and of its AWS observations, and those."""
    out = {}
    for item in plan.items:
        seen = observed(plan, item)
        out[item.key] = {
            "spec": spec_digest(spec, item.fleet),
            "aws": _digest(seen),
            "observed": seen,
        }
    return out


@dataclass(frozen=True)
class SavedPlan:
    path: Path
    files: tuple[str, ...]  # the spec files, absolute
    fleets: tuple[str, ...]  # the --fleet patterns of the plan
    created_at: float
    fleet_prints: Mapping[str, Mapping[str, Any]]
    plan: Mapping[str, Any]  # Plan.to_dict() as it was shown

    def changes(self, spec: Spec, fresh: Plan) -> list[str]:
        """What differs between this saved plan and ``fresh`` (made now), in words."""
        now = fingerprints(spec, fresh)
        out = []
        for key in self.fleet_prints.keys() - now.keys():
            out.append(f"{key}: in the saved plan, not in a plan made now")
        for key in now.keys() - self.fleet_prints.keys():
            out.append(f"{key}: in a plan made now, not in the saved plan")
        for key in [k for k in now if k in self.fleet_prints]:
            before, after = self.fleet_prints[key], now[key]
            if before["spec"] != after["spec"]:
                out.append(f"{key}: its spec changed (the fleet's or its image's settings)")
            if before["aws"] != after["aws"]:
                was, found = before.get("observed", {}), after["observed"]
                diffs = [
                    f"{name} {was.get(name)!r} -> {found[name]!r}"
                    for name in found
                    if was.get(name) != found[name]
                ]
                out.append(f"{key}: AWS changed: {', '.join(diffs) or 'its observations differ'}")
        return sorted(out)


def save(
    path: str | os.PathLike[str],
    spec: Spec,
    plan: Plan,
    files: Sequence[str],
    fleets: Sequence[str] = (),
) -> None:
    """Write ``plan`` with what it was made from to ``path`` (mode 0600, whole or not at all)."""
    target = Path(path)
    data = {
        "kind": KIND,
        "version": VERSION,
        "created_at": time.time(),
        "files": [str(Path(f).resolve()) for f in files],
        "fleets": list(fleets),
        "fingerprints": fingerprints(spec, plan),
        "plan": plan.to_dict(),
    }
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    os.replace(tmp, target)


def load(path: str | os.PathLike[str]) -> SavedPlan:
    """The saved plan at ``path``, or a UsageError saying why it is not one."""
    target = Path(path)
    try:
        data = json.loads(target.read_text())
    except OSError as exc:
        raise UsageError(f"{target}: cannot read the saved plan: {exc.strerror or exc}") from None
    except ValueError:
        raise UsageError(f"{target}: not a saved plan (not JSON)") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise UsageError(f"{target}: not a saved plan (made by `immutable-sdk plan --out`)")
    if data.get("version") != VERSION:
        raise UsageError(
            f"{target}: a saved plan of version {data.get('version')!r}; this immutable-sdk "
            f"reads version {VERSION}: make the plan again"
        )
    try:
        return SavedPlan(
            path=target,
            files=tuple(str(f) for f in data["files"]),
            fleets=tuple(str(f) for f in data["fleets"]),
            created_at=float(data["created_at"]),
            fleet_prints=dict(data["fingerprints"]),
            plan=dict(data["plan"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{target}: a damaged saved plan ({exc!r}); make it again") from None
