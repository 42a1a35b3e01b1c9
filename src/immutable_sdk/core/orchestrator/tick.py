"""The seam between the state machine and the engine: one tick of one unit.

A tick reads the unit's journal and AWS, does every step that is due, and says where the unit
stands (``TickAnswer``). The state machine only needs that answer: converged or failed ends the
unit's branch, ``progressing`` with ``next_at`` waits until then, anything else (an operator's
promote, a lock held elsewhere) is asked again after the poll interval. Ticks are idempotent
(journal and lock epoch), so a tick that is repeated after a worker died never repeats a step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from ...errors import UsageError

STATES = ("converged", "progressing", "waiting", "failed")


@dataclass(frozen=True)
class TickAnswer:
    """Where a unit stands after a tick.

    ``state``: ``converged`` (done), ``progressing`` (more steps are due at ``next_at``),
    ``waiting`` (for an operator's promote or abort, or a lock: ask again later) or ``failed``
    (rolled back or unrecoverable; ``reason`` says why). ``next_at``: ISO 8601 UTC with a zone.
    """

    state: str
    next_at: str | None = None
    reason: str = ""
    rollout: str | None = None  # the rollout's id in the journal, when one ran

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"tick state must be one of {', '.join(STATES)}, got {self.state!r}")
        if self.next_at is not None:
            object.__setattr__(self, "next_at", timestamp(self.next_at))

    def to_output(self) -> dict[str, Any]:
        """The task's output: what the state machine's Choice reads (``$.tick``)."""
        return {
            "state": self.state,
            "next_at": self.next_at,
            "reason": self.reason,
            "rollout": self.rollout,
        }


def timestamp(value: str | datetime) -> str:
    """``value`` as Step Functions' Wait ``TimestampPath`` takes it: UTC, ``Z``, whole seconds
    rounded up (a wait never ends before the time the tick asked for)."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        raise ValueError(f"next_at needs a time zone, got {value!r}")
    when = when.astimezone(timezone.utc)
    if when.microsecond:
        when = when.replace(microsecond=0) + _SECOND
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


_SECOND = datetime(2000, 1, 1, 0, 0, 1) - datetime(2000, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class TickRequest:
    """What a Tick task's SQS message asks: one tick of ``unit`` for ``execution``."""

    token: str
    unit: str  # the unit's key: ``fleet`` or ``fleet@region``
    fleet: str
    region: str
    wave: str
    execution: str  # the execution's ARN: the audit trail of this rollout
    plan: str  # the plan's digest the execution was started for
    spec_digest: str  # the unit's spec as the execution was started for it
    heartbeat_seconds: int = 60  # the Tick state's HeartbeatSeconds

    @classmethod
    def from_message(cls, body: str | Mapping[str, Any]) -> TickRequest:
        import json

        try:
            data = json.loads(body) if isinstance(body, str) else dict(body)
            unit = data["unit"]
            return cls(
                token=str(data["task_token"]),
                unit=str(unit["key"]),
                fleet=str(unit["fleet"]),
                region=str(unit["region"]),
                wave=str(data.get("wave", "")),
                execution=str(data.get("execution", "")),
                plan=str(data.get("plan", "")),
                spec_digest=str(unit.get("spec_digest", "")),
                heartbeat_seconds=int(data.get("heartbeat_seconds", 60)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"not a tick message: {exc!s} in {str(body)[:200]!r}") from exc


class Ticker(Protocol):
    """Runs one tick of one unit. Must be idempotent: a tick asked twice (a worker died after
    doing a step but before answering) does what is due, never a step twice."""

    def tick(self, request: TickRequest) -> TickAnswer: ...
