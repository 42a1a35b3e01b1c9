"""Which releases serve a fleet, read from AWS: checked before a rollout is recorded finished.

A rollout is recorded ``promoted`` or ``rolled_back`` only when one release serves the fleet:
the release it promoted or restored (none at all after rolling back a fleet's creation). What
serves, read afresh from AWS rather than from what the runner believes:

* a fleet without traffic slots: the live members of its Auto Scaling group, and instances of
  the fleet registered in the group's target groups although the group does not hold them (a
  retire that detached without deregistering);
* a fleet with traffic slots: the live members of every slot group that Route 53 gives weight.

When another release still serves, the outcome is not recorded: the rollout stays unfinished
(``StillServing``) and the next ``apply`` finishes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...aws.fleet import FleetApi, GroupState
from ...aws.slots import SlotGroups
from ...aws.traffic import SLOTS, TrafficApi, TrafficSpec
from ...errors import RolloutFailed
from ...spec.model import FleetSpec

UNTAGGED = "(no release tag)"


class StillServing(RolloutFailed):
    """A rollout reached its end but another release still serves the fleet."""


def _members(group: GroupState, out: dict[str, list[str]]) -> None:
    for m in group.live():
        out.setdefault(m.release or UNTAGGED, []).append(m.instance_id)


def group_serving(api: FleetApi, fleet: str) -> dict[str, list[str]]:
    """Release -> instances serving a fleet without traffic slots (see the module docstring)."""
    group = api.describe_one(fleet)
    if group is None:
        return {}
    out: dict[str, list[str]] = {}
    _members(group, out)
    if group.target_groups:
        held = {m.instance_id for m in group.members}
        outside = sorted(set(api.registered_targets(group.target_groups)) - held)
        for instance, release in api.fleet_instances(fleet, outside).items():
            out.setdefault(release or UNTAGGED, []).append(instance)
    return out


def slots_serving(groups: SlotGroups, routes: TrafficApi, fleet: FleetSpec) -> dict[str, list[str]]:
    """Release -> instances of the slot groups that have weight (a fleet with slots)."""
    weights = routes.weights(TrafficSpec.of(fleet))
    found = groups.describe(fleet.name)
    out: dict[str, list[str]] = {}
    for slot in SLOTS:
        group = found[slot]
        if group is not None and weights.get(slot, 0) > 0:
            _members(group, out)
    return out


def others(serving: Mapping[str, Sequence[str]], release: str | None) -> dict[str, list[str]]:
    """What serves besides ``release`` (None: nothing may serve)."""
    return {r: sorted(ids) for r, ids in serving.items() if r != release and ids}


def require_only(serving: Mapping[str, Sequence[str]], release: str | None, outcome: str) -> None:
    """Raise StillServing when anything but ``release`` serves (the outcome is not recorded)."""
    extra = others(serving, release)
    if not extra:
        return
    what = "; ".join(
        f"release {r}: {len(ids)} instance(s) ({_some(ids)})" for r, ids in sorted(extra.items())
    )
    goal = f"only release {release}" if release else "nothing"
    raise StillServing(f"not recorded {outcome}: {goal} should serve, but {what} still serve")


def _some(ids: Sequence[str], shown: int = 5) -> str:
    return ", ".join(ids[:shown]) + (", ..." if len(ids) > shown else "")
