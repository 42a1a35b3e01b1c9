"""Holds: decisions that the next ``apply`` must respect instead of undoing.

A declarative tool undoes an operator's decision on its next run unless the decision is kept.
Two are kept here, in the state store (``state.base.Hold``), per fleet (unit key):

- **quarantine**: a rollout to a new release failed its gates (health gate, bake, analysis,
  launch, a refused traffic shift, a wave's bake) or was aborted by an operator. The release
  is quarantined: ``plan`` shows the fleet ``blocked`` (with the rollout and the check that
  failed) and ``apply`` leaves it alone, with exit code 1, until ``apply --retry-failed``.
  Any other desired release (a new image, user data, instance type...) is a new release id,
  so it is not blocked. An AWS error or a crash quarantines nothing: they say nothing about
  the release.
- **pin**: ``immutable-sdk rollback`` pins the fleet to the release it returned to. ``plan``
  shows ``pinned`` and changes nothing while the spec still wants the release rolled back
  from; ``immutable-sdk unpin --fleet F`` or a spec that wants yet another release ends it.

The planner turns a would-be rollout into ``blocked`` or ``pinned`` (``held_item``); apply
answers those items without touching AWS (``held_result``) and lifts the holds a rollout
supersedes under the fleet's lock (``lift``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ...errors import Aborted, GateFailed
from ...plugin import RolloutInfo
from ...results import FleetResult, Plan, PlanItem
from ...state.base import Hold, StateStore

QUARANTINE, PIN = "quarantine", "pin"
HELD_ACTIONS = ("blocked", "pinned")  # plan actions that make no change
ROLLOUT_ACTIONS = ("create", "replace")


def failed_checks(exc: BaseException) -> tuple[str, ...] | None:
    """What judged a release bad: the failing checks of a gate, ``abort`` for an operator's
    abort; None for anything that says nothing about the release (AWS errors, a lost lock)."""
    if isinstance(exc, Aborted):
        return ("abort",)
    if isinstance(exc, GateFailed):
        return exc.checks or ("gate",)
    return None


def quarantine_failure(
    state: StateStore, info: RolloutInfo, action: str, exc: BaseException, now: float
) -> Hold | None:
    """Quarantine the release a rollout failed to bring in, when its gates (or an operator)
    judged it. A return to a known release (``rollback``, a recycle or drift fix within one
    release) quarantines nothing: the release was good before."""
    checks = failed_checks(exc)
    if checks is None or action == "rollback" or info.to_release == info.from_release:
        return None
    return quarantine(
        state,
        info.fleet,
        info.to_release,
        info.id,
        checks,
        str(exc),
        now,
        from_release=info.from_release,
    )


def quarantine(
    state: StateStore,
    fleet: str,
    release: str,
    rollout: str,
    checks: Sequence[str],
    reason: str,
    now: float,
    *,
    from_release: str | None = None,
) -> Hold:
    hold = Hold(
        fleet,
        QUARANTINE,
        release,
        now,
        rollout=rollout,
        reason=reason,
        data={"checks": list(checks), "from_release": from_release},
    )
    state.put_hold(hold)
    return hold


def pin(
    state: StateStore,
    fleet: str,
    release: str,
    from_release: str | None,
    rollout: str | None,
    now: float,
) -> Hold:
    """Pin ``fleet`` to ``release`` (rolled back to from ``from_release``)."""
    hold = Hold(
        fleet,
        PIN,
        release,
        now,
        rollout=rollout,
        reason="immutable-sdk rollback",
        data={"from_release": from_release},
    )
    state.put_hold(hold)
    return hold


def describe(hold: Hold) -> dict[str, Any]:
    """A hold as plan items, results, ``status`` and JSON show it."""
    return {
        "kind": hold.kind,
        "release": hold.release,
        "rollout": hold.rollout,
        "at": hold.at,
        "reason": hold.reason,
        **{k: v for k, v in hold.data.items()},
    }


def _checks(hold: Mapping[str, Any]) -> str:
    return ", ".join(hold.get("checks") or ()) or "its gates"


def held_item(item: PlanItem, holds: Sequence[Hold], unit: str) -> PlanItem:
    """``item`` (a rollout the planner found due) as the fleet's holds leave it: ``blocked``
    by a quarantine of its release, ``pinned`` by a rollback, or unchanged. ``unit``: the
    fleet's key as people type it."""
    if item.action not in ROLLOUT_ACTIONS or item.release is None:
        return item
    for hold in holds:
        if hold.kind == PIN and hold.data.get("from_release") == item.release:
            info = describe(hold)
            why = (
                f"pinned to {hold.release} by immutable-sdk rollback (rollout {hold.rollout}); "
                f"the spec still wants {item.release}, the release rolled back from: "
                f"immutable-sdk unpin --fleet {unit} lets apply roll it out again"
            )
            return replace(
                item, action="pinned", reasons=(why,), hold={**info, "action": item.action}
            )
    for hold in holds:
        if hold.kind == QUARANTINE and hold.release == item.release:
            info = describe(hold)
            why = (
                f"release {hold.release} is quarantined: rollout {hold.rollout} failed "
                f"{_checks(info)} ({hold.reason}); apply --retry-failed rolls it out again"
            )
            return replace(
                item, action="blocked", reasons=(why,), hold={**info, "action": item.action}
            )
    pins = [h for h in holds if h.kind == PIN and h.release != item.release]
    if pins:
        moved = (
            f"the spec wants a release other than {pins[0].data.get('from_release')}, which "
            f"was rolled back from: the pin on {pins[0].release} ends"
        )
        return replace(item, reasons=(*item.reasons, moved))
    return item


def retrying(item: PlanItem) -> PlanItem:
    """A ``blocked`` item as ``apply --retry-failed`` runs it: the rollout it stood for."""
    if item.action != "blocked" or not item.hold:
        return item
    again = f"retrying quarantined release {item.release} (--retry-failed)"
    return replace(item, action=str(item.hold["action"]), reasons=(again,))


def retrying_plan(plan: Plan) -> Plan:
    """``plan`` as ``apply --retry-failed`` runs it: quarantined releases rolled out."""
    return replace(plan, items=tuple(retrying(i) for i in plan.items))


def held_result(item: PlanItem, unit: str) -> FleetResult:
    """What apply answers for a ``blocked`` or ``pinned`` item: no change to AWS."""
    hold = item.hold or {}
    if item.action == "pinned":
        return FleetResult(
            item.fleet,
            "pinned",
            "pinned",
            item.current_release,
            item.release,
            hold.get("rollout"),
        )
    error = (
        f"release {item.release} is quarantined: rollout {hold.get('rollout')} failed "
        f"{_checks(hold)}; not rolled out again: fix the release, or run "
        f"apply --retry-failed to try it again"
    )
    return FleetResult(
        item.fleet,
        "blocked",
        "quarantined",
        item.current_release,
        item.release,
        hold.get("rollout"),
        error=error,
    )


def lift(state: StateStore, item: PlanItem) -> list[Hold]:
    """Before a rollout of ``item``, under the fleet's lock: drop the quarantine it retries
    (``--retry-failed``) and a pin whose rolled-back-from release the spec no longer wants."""
    if item.action not in ROLLOUT_ACTIONS or item.release is None:
        return []
    lifted: list[Hold] = []
    if item.hold and item.hold.get("kind") == QUARANTINE:
        lifted += state.drop_holds(item.fleet, QUARANTINE, item.release)
    for hold in state.holds(item.fleet):
        if hold.kind == PIN and hold.data.get("from_release") != item.release:
            lifted += state.drop_holds(item.fleet, PIN)
    return lifted
