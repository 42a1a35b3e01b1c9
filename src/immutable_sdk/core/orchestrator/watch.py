"""What an execution is doing, read from its history: each unit's last tick and its state.

Step Functions' history is the audit log of a rollout: every Tick sent (with its unit),
answered, timed out (a worker died) or failed. ``unit_states`` folds it into one line per unit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any


def _body(event: Mapping[str, Any]) -> dict[str, Any]:
    params = json.loads(event["taskScheduledEventDetails"]["parameters"])
    body = params.get("MessageBody", {})
    return dict(json.loads(body) if isinstance(body, str) else body)


def unit_states(events: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per unit key: ``state`` (the last answer's, or ``ticking`` while a worker has its
    tick, ``retrying`` after a worker stopped answering, ``tick failed``), ``next_at``,
    ``reason``, ``ticks`` (ticks answered) and ``retries`` (ticks given to another worker)."""
    owner: dict[int, str] = {}
    units: dict[str, dict[str, Any]] = {}
    for event in events:
        kind = event["type"]
        unit: str | None = None
        if kind == "TaskScheduled":
            try:
                unit = str(_body(event)["unit"]["key"])
            except (KeyError, ValueError, TypeError):
                continue  # not a Tick
            entry = units.setdefault(
                unit, {"state": "ticking", "next_at": None, "reason": "", "ticks": 0, "retries": 0}
            )
            # a new tick: the last answer's next_at and reason are history now
            entry.update(state="ticking", next_at=None, reason="")
        else:
            unit = owner.get(int(event.get("previousEventId") or 0))
        if unit is None:
            continue
        owner[int(event["id"])] = unit
        entry = units[unit]
        if kind == "TaskSucceeded":
            answer = json.loads(event["taskSucceededEventDetails"].get("output") or "{}")
            entry.update(
                state=answer.get("state", "?"),
                next_at=answer.get("next_at"),
                reason=answer.get("reason", ""),
            )
            entry["ticks"] += 1
        elif kind == "TaskTimedOut":
            entry["state"] = "retrying"
            entry["reason"] = "its worker stopped heartbeating; the tick goes to another"
            entry["retries"] += 1
        elif kind == "TaskFailed":
            details = event.get("taskFailedEventDetails", {})
            entry["state"] = "tick failed"
            entry["reason"] = f"{details.get('error', '')}: {details.get('cause', '')}"
    return units


def execution_summary(
    described: Mapping[str, Any], events: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """``status``'s view of an execution: its ARN, status, error and cause, and its units."""

    def iso(value: Any) -> Any:
        return value.isoformat() if hasattr(value, "isoformat") else value

    return {
        "execution_arn": described["executionArn"],
        "name": described.get("name"),
        "status": described["status"],
        "started_at": iso(described.get("startDate")),
        "stopped_at": iso(described.get("stopDate")),
        "error": described.get("error"),
        "cause": described.get("cause"),
        "units": unit_states(events),
    }
