"""The Auto Scaling groups of traffic slots: one group per slot, one launch template per fleet.

Fleet F of project P with traffic slots has the groups ``P-F-blue`` and ``P-F-green`` (tagged
``immutable-sdk:slot``), each attached to its slot's target group, and the launch template
``P-F`` with a version per release, as a fleet without slots has. A slot group runs one
release for its whole life: a release replaces the idle slot's group, never patches it.

Reading reuses ``FleetApi`` (its batched describes and instance cache) under the name
``F-slot``, which gives the group name ``P-F-slot``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..errors import AwsError
from ..plugin import TAG_FLEET, TAG_PROJECT, TAG_RELEASE, TAG_SLOT
from ..spec.model import FleetSpec
from .fleet import FleetApi, GroupState
from .session import aws_errors, error_code
from .traffic import SLOTS, TrafficApi, TrafficSpec

DELETE_TIMEOUT = 900.0  # seconds a force-deleted group may take to disappear


@dataclass
class SlotGroups:
    fleets: FleetApi

    @property
    def asg(self) -> Any:
        return self.fleets.asg

    def key(self, fleet: str, slot: str) -> str:
        """The FleetApi name of a slot's group (``F-slot`` gives the group ``P-F-slot``)."""
        return f"{fleet}-{slot}"

    def group_name(self, fleet: str, slot: str) -> str:
        return self.fleets.name(self.key(fleet, slot))

    # --- reading ---------------------------------------------------------------------------

    def describe(self, fleet: str) -> dict[str, GroupState | None]:
        """Slot -> its group (None where absent): one describe call for both."""
        return self.describe_many([fleet])[fleet]

    def describe_many(self, fleets: Iterable[str]) -> dict[str, dict[str, GroupState | None]]:
        names = list(fleets)
        found = self.fleets.describe([self.key(f, s) for f in names for s in SLOTS])
        return {f: {s: found[self.key(f, s)] for s in SLOTS} for f in names}

    def target_states(self, target_groups: Sequence[str], ids: Sequence[str]) -> dict[str, str]:
        """Instance -> its worst target state over the target groups (one call per group)."""
        if not ids:
            return {}
        rank = {"healthy": 0, "initial": 1, "unused": 2, "draining": 3, "unhealthy": 4}
        states: dict[str, str] = {}
        with aws_errors("describing target health"):
            for tg in target_groups:
                out = self.fleets.elbv2.describe_target_health(
                    TargetGroupArn=tg, Targets=[{"Id": i} for i in ids]
                )
                for d in out["TargetHealthDescriptions"]:
                    iid = str(d["Target"]["Id"])
                    state = str(d.get("TargetHealth", {}).get("State", "unavailable"))
                    if rank.get(state, 5) >= rank.get(states.get(iid, "healthy"), 5):
                        states[iid] = state
        return states

    # --- writing ---------------------------------------------------------------------------

    def create(
        self,
        fleet: FleetSpec,
        slot: str,
        version: int,
        *,
        subnets: Sequence[str],
        target_groups: Sequence[str],
        release: str,
        desired: int,
        max_size: int,
    ) -> None:
        name = self.group_name(fleet.name, slot)
        tags = {
            **dict(fleet.tags),
            TAG_PROJECT: self.fleets.project,
            TAG_FLEET: fleet.name,
            TAG_SLOT: slot,
            TAG_RELEASE: release,
        }
        with aws_errors(f"creating Auto Scaling group {name}"):
            self.asg.create_auto_scaling_group(
                AutoScalingGroupName=name,
                LaunchTemplate={
                    "LaunchTemplateName": self.fleets.name(fleet.name),
                    "Version": str(version),
                },
                MinSize=0,
                DesiredCapacity=desired,
                MaxSize=max(max_size, desired),
                VPCZoneIdentifier=",".join(subnets),
                TargetGroupARNs=list(target_groups),
                HealthCheckType="ELB" if target_groups else "EC2",
                HealthCheckGracePeriod=60,
                Tags=[
                    {
                        "Key": k,
                        "Value": v,
                        "PropagateAtLaunch": False,
                        "ResourceId": name,
                        "ResourceType": "auto-scaling-group",
                    }
                    for k, v in tags.items()
                ],
            )

    def resize(
        self,
        fleet: str,
        slot: str,
        *,
        min_size: int | None = None,
        desired: int | None = None,
        max_size: int | None = None,
    ) -> None:
        self.fleets.update_group(
            self.key(fleet, slot), min_size=min_size, desired=desired, max_size=max_size
        )

    def tag(self, fleet: str, slot: str, tags: Mapping[str, str]) -> None:
        self.fleets.tag_group(self.key(fleet, slot), tags)

    def delete(self, fleet: str, slot: str, clock: Clock, beat: Any = None) -> bool:
        """Force-delete a slot's group (terminating its instances); wait until it is gone.

        Returns False when there was no group. Raises AwsError when the group is still there
        after DELETE_TIMEOUT seconds.
        """
        name = self.group_name(fleet, slot)
        with aws_errors(f"deleting Auto Scaling group {name}"):
            try:
                self.asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
            except Exception as exc:
                if error_code(exc) != "ValidationError":  # no such group
                    raise
                return False
        start = clock.monotonic()
        delay = 1.0
        while self.describe(fleet)[slot] is not None:
            elapsed = clock.monotonic() - start
            if elapsed >= DELETE_TIMEOUT:
                raise AwsError(
                    f"Auto Scaling group {name} is still being deleted after {DELETE_TIMEOUT:g}s",
                    code="DeleteInProgress",
                )
            if beat is not None:
                beat()
            clock.sleep(min(delay, DELETE_TIMEOUT - elapsed))
            delay = min(delay * 2, 15.0)
        return True


def live_slot(
    weights: Mapping[str, int],
    groups: Mapping[str, GroupState | None],
    prefer: str | None = None,
) -> str | None:
    """The slot that serves the fleet: the one with the most weight that has a group.

    A tie (an interrupted canary at 50%) goes to ``prefer`` (the slot the interrupted rollout
    moved traffic from), else to blue. Without records (or with weight only on a slot whose
    group is gone), the only slot with a group tagged with a release, if there is exactly one;
    otherwise None (a new fleet).
    """
    ranked = sorted(SLOTS, key=lambda s: (-weights.get(s, 0), s != prefer, SLOTS.index(s)))
    for slot in ranked:
        if weights.get(slot, 0) > 0 and groups.get(slot) is not None:
            return slot
    released = [s for s in SLOTS if (g := groups.get(s)) is not None and g.release]
    return released[0] if len(released) == 1 and not any(weights.values()) else None


def live_groups(
    groups: SlotGroups, routes: TrafficApi, fleets: Sequence[FleetSpec]
) -> dict[str, GroupState | None]:
    """Fleet -> the group of its live slot (None for a fleet not created yet)."""
    found = groups.describe_many([f.name for f in fleets])
    out: dict[str, GroupState | None] = {}
    for fleet in fleets:
        slots = found[fleet.name]
        live = live_slot(routes.weights(TrafficSpec.of(fleet)), slots)
        out[fleet.name] = slots[live] if live else None
    return out
