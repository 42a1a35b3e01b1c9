"""The last canary analysis of a fleet, as ``status`` shows it: read back from the journal.

Every judgement of an analysis step is journaled as a ``note`` entry whose data is
``{"note": "analysis", **Judgement.to_dict()}``; the newest one of the fleet's newest rollout
that has one is the fleet's last analysis, whether that rollout is running, promoted or rolled
back.
"""

from __future__ import annotations

from typing import Any

from ...state.base import StateStore

LOOK_BACK = 5  # rollouts of the fleet to look through, newest first


def last_analysis(state: StateStore, fleet: str) -> dict[str, Any] | None:
    """``{"rollout", "step", "at", **judgement}`` of the fleet's last analysis, or None."""
    for rollout in state.rollouts(fleet, limit=LOOK_BACK):
        notes = [
            e
            for e in state.journal(rollout.id)
            if e.status == "note" and e.data.get("note") == "analysis"
        ]
        if notes:
            last = notes[-1]
            data = {k: v for k, v in last.data.items() if k != "note"}
            return {"rollout": rollout.id, "step": last.step_index, "at": last.at, **data}
    return None
