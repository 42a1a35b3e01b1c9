"""``status --on step-functions``: each unit's line folded from the execution's history."""

from __future__ import annotations

import json
from typing import Any

from immutable_sdk.core.orchestrator.watch import unit_states


def scheduled(event_id: int, unit: str) -> dict[str, Any]:
    body = {"task_token": "t", "unit": {"key": unit}}
    return {
        "id": event_id,
        "type": "TaskScheduled",
        "taskScheduledEventDetails": {"parameters": json.dumps({"MessageBody": body})},
    }


def answered(event_id: int, previous: int, **answer: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "previousEventId": previous,
        "type": "TaskSucceeded",
        "taskSucceededEventDetails": {"output": json.dumps(answer)},
    }


def test_a_unit_s_line_follows_its_ticks() -> None:
    history = [
        scheduled(1, "web"),
        answered(2, 1, state="progressing", next_at="2026-12-05T10:00:00+00:00"),
        scheduled(3, "api"),
        {"id": 4, "previousEventId": 3, "type": "TaskTimedOut"},
    ]
    units = unit_states(history)
    assert units["web"]["state"] == "progressing"
    assert units["web"]["next_at"] == "2026-12-05T10:00:00+00:00"
    assert (units["api"]["state"], units["api"]["retries"]) == ("retrying", 1)
    # the next tick of web is in a worker's hands: no "until" from the answer before
    units = unit_states([*history, scheduled(5, "web")])
    assert units["web"] == {
        "state": "ticking",
        "next_at": None,
        "reason": "",
        "ticks": 1,
        "retries": 0,
    }
    units = unit_states([*history, scheduled(5, "web"), answered(6, 5, state="converged")])
    assert (units["web"]["state"], units["web"]["ticks"]) == ("converged", 2)
