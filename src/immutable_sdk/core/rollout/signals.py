"""Where a rollout is, and what an operator asks of it from another process.

Both serve every fleet, rolling or with traffic slots: ``status`` shows ``rollout_progress``;
``promote``, ``promote-full`` and ``abort`` go through ``signal_rollout`` to the runner, which
reads the signal at its next wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...clock import Clock
from ...errors import UsageError
from ...lifecycle import step_from_dict
from ...state.base import JournalEntry, RolloutRecord, StateStore


def signal_rollout(state: StateStore, clock: Clock, fleet: str, name: str) -> RolloutRecord:
    """Send ``name`` (promote, promote-full, abort) to the fleet's unfinished rollout.

    The rollout's runner, in whatever process runs it, reads the signal at its next wait
    (within seconds). Raises UsageError when the fleet has no rollout in progress.
    """
    record = state.unfinished_rollout(fleet)
    if record is None:
        raise UsageError(f"fleet {fleet!r} has no rollout in progress")
    state.send_signal(record.id, name, clock.now())
    return record


def rollout_progress(record: RolloutRecord, journal: Sequence[JournalEntry]) -> dict[str, Any]:
    """Where a rollout is: its steps in words, the current one, and whether it waits."""
    steps = [step_from_dict(s).describe() for s in record.steps]
    started = [e for e in journal if e.status == "started" and e.step_index >= 0]
    current = max((e.step_index for e in started), default=-1)
    # Notes (samples, an analysis's judgement) do not end a step: it still waits after one.
    last = next((e for e in reversed(journal) if e.status != "note"), None)
    # What an analysis judged before it paused (an inconclusive analysis waits for promote).
    judged = [
        e for e in journal if e.status == "note" and e.step_index == current and "verdict" in e.data
    ]
    return {
        "steps": steps,
        "current": current,
        "step": steps[current] if 0 <= current < len(steps) else None,
        "waiting": bool(last and last.status == "started"),
        "analysis": dict(judged[-1].data) if judged else None,
    }
