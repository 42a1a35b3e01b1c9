"""What a tick can tell from the state store alone: which units wait, and until when.

A tick whose every unit waits on time that has not come (a bake, a pause, a wave's bake)
needs nothing from AWS: ``not_due`` answers it from each unit's newest journal entry, so a
cron job that ticks more often than anything is due costs only state store reads. A wait
for an operator is always looked at (a ``promote`` may have been sent).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...lifecycle import STEP_TYPES, step_from_dict
from ...results import UnitTick
from ...state.base import RolloutRecord, StateStore
from .horizon import OPERATOR

WAVE_BAKE = "wave_bake"  # the key of a wave's bake in a rollout record's data


def step_text(record: RolloutRecord, index: int) -> str | None:
    """The words of step ``index`` of ``record`` (None: not one of its planned steps)."""
    if 0 <= index < len(record.steps) and record.steps[index].get("kind") in STEP_TYPES:
        return step_from_dict(record.steps[index]).describe()
    return None


def waiting(state: StateStore, record: RolloutRecord) -> dict[str, Any] | None:
    """The rollout's ``waiting`` note when it is the newest entry of its journal (a tick
    suspended it there and nothing happened since); else None."""
    journal = state.journal(record.id)
    if not journal or journal[-1].data.get("note") != "waiting":
        return None
    return {**journal[-1].data, "index": journal[-1].step_index}


def wave_bake(record: RolloutRecord | None) -> dict[str, Any] | None:
    """The wave bake a finished rollout still owes (None: none, or done)."""
    if record is None or record.outcome not in ("promoted", "created"):
        return None
    bake = record.data.get(WAVE_BAKE)
    if not isinstance(bake, dict) or bake.get("done"):
        return None
    return bake


def not_due(state: StateStore, keys: Sequence[str], now: float) -> dict[str, UnitTick] | None:
    """Every unit of ``keys`` as it waits, when each waits on time that has not come yet;
    None when any unit may have something to do now (the tick plans and runs)."""
    units: dict[str, UnitTick] = {}
    for key in keys:
        record = state.unfinished_rollout(key)
        if record is None:
            newest = state.rollouts(key, limit=1)
            bake = wave_bake(newest[0] if newest else None)
            next_at = bake.get("next_at") if bake else None
            if bake is None or not isinstance(next_at, (int, float)) or next_at <= now:
                return None
            units[key] = UnitTick(
                "progressing",
                "baking",
                rollout=newest[0].id,
                step=f"wave {bake.get('wave')} bake",
                waiting_for=WAVE_BAKE,
                next_at=float(next_at),
                to_release=newest[0].to_release,
            )
            continue
        wait = waiting(state, record)
        next_at = wait.get("next_at") if wait else None
        if wait is None or not isinstance(next_at, (int, float)) or next_at <= now:
            return None
        kind = str(wait.get("for"))
        if kind == OPERATOR:  # an operator's promote may be waiting in the store
            return None
        units[key] = UnitTick(
            "progressing",
            "waiting",
            rollout=record.id,
            step=step_text(record, int(wait["index"])),
            waiting_for=kind,
            next_at=float(next_at),
            from_release=record.from_release,
            to_release=record.to_release,
        )
    return units
