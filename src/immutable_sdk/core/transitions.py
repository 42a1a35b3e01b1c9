"""Journaled transitions and their notifications: each notified once, by whoever journals it.

A transition is a journal entry of a status other than ``note``: a step ``started``,
``finished`` or ``failed``, and at step index -1 the rollout's own ``rollout_started``,
``rollback_started`` and ``rollout_finished``; a traffic shift is ``traffic_shifted:{weights}``
at the index of the step that shifted. The state store writes a transition at most once per
rollout, step index and status (``StateStore.append_journal``: a second append writes nothing
and returns ``appended`` False), whatever process appends it, so the append is the single
point that decides who notifies: only the process whose append wrote the entry calls the
notify hook. A rollout resumed by another process (or a later tick) that journals a transition
again notifies nothing again.

Every notify hook gets ``event_id``, ``{rollout}/{step index}/{status}``: the same transition
has the same id in every process, so a notifier can hand it on as an idempotency key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..plugin import RolloutInfo
from ..state.base import JournalEntry, StateStore

ROLLOUT_LEVEL = -1  # the step index of the rollout's own transitions

ROLLOUT_STARTED = "rollout_started"
ROLLBACK_STARTED = "rollback_started"
ROLLOUT_FINISHED = "rollout_finished"


def event_id(rollout: str, index: int, status: str) -> str:
    """The identity of a journaled transition (and of its notification)."""
    return f"{rollout}/{index}/{status}"


def shift_status(after: Mapping[str, int]) -> str:
    """The transition of a traffic shift to ``after``: one per step and target weights."""
    return "traffic_shifted:" + ",".join(f"{s}={int(w)}" for s, w in sorted(after.items()))


def journal_and_notify(
    state: StateStore,
    hook: Any,
    info: RolloutInfo,
    index: int,
    status: str,
    at: float,
    data: Mapping[str, Any],
    notify: str,
    **arguments: Any,
) -> JournalEntry:
    """Journal the transition and, only when this call wrote it, call the notify hook
    ``notify`` (a name like ``immutable_sdk_step_started``) on ``hook`` (the plugin
    manager's hook relay) with ``rollout=info``, ``event_id`` and ``arguments``. The entry
    (``appended`` False: journaled before, by this process or another, and not notified)."""
    entry = state.append_journal(info.id, index, status, at, data)
    if entry.appended:
        getattr(hook, notify)(rollout=info, event_id=event_id(info.id, index, status), **arguments)
    return entry
