"""The apply record: a plan's progress across ticks, one durable fact per plan.

``record_apply`` writes (or updates) the record of the plan an ``apply`` or a reconcile tick
just ran: its digest (each unit's desired release and action, the waves), the waves, each
unit's outcome and rollout id (what it waits for, until when), and each wave bake's start and
deadline as the units' rollouts owe them (``apply.wave_ledger``). Any process can read where
a plan stands from the store alone (``StateStore.latest_apply``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from ...results import FleetResult, Plan
from ...state.base import ApplyRecord, StateStore
from .due import WAVE_BAKE


def plan_digest(plan: Plan) -> str:
    """What the plan wants, as a digest: each unit's action and release, and the waves."""
    wanted = {
        "units": sorted((i.key, i.action, i.release or "") for i in plan.items),
        "waves": [dict(w) for w in plan.waves],
    }
    return hashlib.sha256(json.dumps(wanted, sort_keys=True, default=str).encode()).hexdigest()


def record_apply(
    state: StateStore, plan: Plan, results: Sequence[FleetResult], now: float
) -> ApplyRecord:
    """Write the record of ``plan`` after a run (a tick of the same plan updates it)."""
    digest = plan_digest(plan)
    ident = f"ap-{digest[:16]}"
    previous = state.latest_apply()
    same = previous is not None and previous.id == ident
    units: dict[str, Any] = dict(previous.data.get("units") or {}) if same and previous else {}
    waves = {i.key: i.wave for i in plan.items}
    bakes: dict[str, Any] = {}
    for result in results:
        units[result.fleet] = {
            "outcome": result.outcome,
            "rollout": result.rollout,
            "to_release": result.to_release,
            "wave": waves.get(result.fleet),
            "waiting_for": result.waiting_for,
            "next_at": result.next_at,
            "error": result.error,
        }
        newest = state.rollouts(result.fleet, limit=1)
        owed = newest[0].data.get(WAVE_BAKE) if newest else None
        if isinstance(owed, dict):
            bakes[result.fleet] = {"rollout": newest[0].id, **owed}
    record = ApplyRecord(
        id=ident,
        digest=digest,
        started_at=previous.started_at if same and previous else now,
        updated_at=now,
        data={"waves": [dict(w) for w in plan.waves], "units": units, "wave_bakes": bakes},
    )
    state.put_apply(record)
    return record
