"""The contract every deployer keeps, and the one place that picks a fleet's deployer.

A deployer rolls one kind of fleet in one region: ``FleetDeployer`` in place (one Auto
Scaling group, instances replaced batch by batch), ``SlotDeployer`` through traffic slots
(blue/green and canary behind weighted DNS). The engine, the regional stacks, the wave bake
and the drift fixes talk to a fleet only through this contract; ``deployer_for`` is how they
choose. Each call runs under the fleet's lock (``locked``) and returns a ``FleetResult``.

``roll`` is the seam where a rollout's steps are executed: it starts a rollout (or finishes
an unfinished one), runs the strategy's steps through the deployer's runner and records the
outcome only when AWS shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ...aws.fleet import GroupState
from ...release import Release
from ...results import FleetResult, PlanItem
from ...spec.model import FleetSpec
from ...state.base import RolloutRecord
from .locks import LockKeeper


class Deployer(Protocol):
    def locked(
        self, fleet: str, work: Callable[[LockKeeper], FleetResult], *, action: str = "-"
    ) -> FleetResult:
        """Run ``work`` holding the fleet's lock (a held lock makes a ``locked`` result)."""
        ...

    def roll(
        self,
        fleet: FleetSpec,
        release: Release,
        action: str,
        keeper: LockKeeper,
        *,
        replace: frozenset[str] = frozenset(),
        abort_unfinished: bool = False,
    ) -> FleetResult:
        """Roll ``fleet`` to ``release``; roll back when a gate fails. An unfinished rollout
        of the fleet comes first: finished, or rolled back (``abort_unfinished``)."""
        ...

    def scale(self, fleet: FleetSpec, item: PlanItem, keeper: LockKeeper) -> FleetResult:
        """Set the serving group's capacity to the spec's."""
        ...

    def destroy(self, item: PlanItem, keeper: LockKeeper) -> FleetResult:
        """Delete what the fleet left on AWS (the spec dropped it)."""
        ...

    def abort_unfinished(
        self,
        fleet: FleetSpec,
        record: RolloutRecord,
        keeper: LockKeeper,
        *,
        reason: str = ...,
        action: str = ...,
    ) -> FleetResult:
        """Roll back the unfinished rollout ``record`` that no process runs any more."""
        ...

    def live_group(self, fleet: FleetSpec) -> GroupState | None:
        """The group that serves ``fleet`` now (None when it has none)."""
        ...

    def status(self, fleet: FleetSpec) -> dict[str, Any]:
        """What ``status`` shows of the fleet beyond its group (a slot fleet's traffic)."""
        ...


def deployer_for(fleet: FleetSpec | None, in_place: Deployer, slots: Deployer) -> Deployer:
    """The deployer of ``fleet``: ``slots`` when it has ``traffic:``, else ``in_place``. A
    fleet the spec dropped (None) may have left slot groups: the slot deployer deletes every
    group of a fleet, so it destroys both kinds."""
    if fleet is None or fleet.traffic:
        return slots
    return in_place
