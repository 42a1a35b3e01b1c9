"""The SDK's own tick: one ``Engine.reconcile`` of one unit (the reconcile issue, #16).

The rest of the orchestrator knows only ``Ticker``. What this adapter relies on:

* ``engine.reconcile(start=True, budget=seconds, units=[unit_key])`` runs one tick of the
  unit: every step due now, the rollout the spec needs started, polls stopped after about
  ``budget`` seconds; idempotent by journal and lock epoch;
* the result's ``units`` maps the unit key to an entry with ``state`` (``converged``,
  ``progressing``, ``waiting_for_operator``, ``failed``, ``locked``), ``next_at`` (epoch
  seconds, or ISO 8601, or None), ``error``, ``waiting_for`` and ``rollout``; entries may be
  objects or dicts (``ReconcileResult.to_dict()``'s shape).
  A ``locked`` unit with a ``next_at`` (when the holder's lease ends) answers ``progressing``
  until then, but no later than ``LOCKED_RECHECK_SECONDS`` from now, not ``waiting``: a tick
  whose worker died holds the fleet's lock until its lease runs out (an AWS request of it may
  still be in flight); the tick asked then takes the lock over and resumes the rollout from its
  journal. A live holder (an operator's ``abort --fleet``, another tick) renews its lease and
  usually lets go well before it would end: the unit is asked again after the recheck, not a
  whole lease after the holder let go.

``waiting_for_operator`` and a ``locked`` unit whose lease end is unknown become ``waiting``:
the state machine asks again after its poll interval. A rollback that waits (outcome
``rolling_back``: a canary's DNS TTL before its slot is retired, a rolling fleet's bake between
batches of the way back) is ``failed`` for ``reconcile`` but not over: it answers
``progressing`` (or ``waiting``), so the unit's branch ends, ``failed``, only with the tick
that finished the rollback. That tick's reason is the failure that started the rollback (the
rollout's recorded error) when its own says nothing. A rollback that AWS stopped
(``rollback_unfinished``) is tried again by later ticks, up to ``ROLLBACK_TRIES`` attempts,
before the unit fails with the rollout still unfinished.

The budget keeps a tick well inside the Tick state's ``TimeoutSeconds``; a step left unfinished
is picked up by the next tick.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Protocol

from ...clock import Clock, RealClock, parse_time
from ...errors import ImmutableSdkError
from .tick import TickAnswer, TickRequest

ROLLING_BACK = "rolling_back"  # results.FAILED_OUTCOMES: a rollback a later tick goes on with
ROLLBACK_UNFINISHED = "rollback_unfinished"  # AWS stopped a rollback: later ticks try again
ROLLBACK_TRIES = 5
ROLLBACK_RETRY_SECONDS = 30.0  # times the attempts made: 30 s, 60 s, 90 s, 120 s
LOCKED_RECHECK_SECONDS = 10.0  # a locked unit is asked again by then, at the latest
STATES = {
    "converged": "converged",
    "progressing": "progressing",
    "waiting_for_operator": "waiting",
    "locked": "waiting",
    "failed": "failed",
}


class Reconciler(Protocol):
    """What the adapter needs of an engine (``core.engine.Engine``)."""

    def reconcile(self, *, start: bool, budget: float, units: list[str]) -> Any: ...

    def history(self, fleet: str | None = None, limit: int = 20) -> Mapping[str, Any]: ...


class ReconcileTick:
    """A ``Ticker`` that runs ``Engine.reconcile`` for the unit of each request."""

    def __init__(
        self,
        open_engine: Callable[[], AbstractContextManager[Reconciler]],
        *,
        spec_digests: Mapping[str, str] | None = None,
        budget: float = 600.0,
        clock: Clock | None = None,
    ) -> None:
        self._open_engine = open_engine
        self.clock = clock or RealClock()
        self._spec_digests = spec_digests
        self.budget = budget
        self.aws_calls: Counter[str] = Counter()  # the ticks' own, by operation
        self._lock = threading.Lock()

    def tick(self, request: TickRequest) -> TickAnswer:
        if self._spec_digests is not None and request.spec_digest:
            mine = self._spec_digests.get(request.unit)
            if mine != request.spec_digest:
                # a worker with another version of the spec must not roll this unit out
                raise ImmutableSdkError(
                    f"{request.unit}: this worker's spec differs from the one the execution "
                    "was started with (redeploy the workers with the same spec)"
                )
        with self._open_engine() as engine:
            result = engine.reconcile(start=True, budget=self.budget, units=[request.unit])
            answer = answer_of(result, request.unit, now=self.clock.now())
            if _outcome(result, request.unit) == ROLLBACK_UNFINISHED:
                answer = self._retry_rollback(engine, request.unit, answer)
            elif answer.state == "failed" and not answer.reason:
                answer = replace(answer, reason=failure_of(engine, request.unit, answer.rollout))
        calls = _get(_get(result, "api_calls", None) or {}, "by_operation", None) or {}
        with self._lock:
            self.aws_calls.update(calls)
        return answer

    def _retry_rollback(self, engine: Reconciler, key: str, answer: TickAnswer) -> TickAnswer:
        """A rollback that AWS stopped (``rollback_unfinished``: the rollout stays unfinished,
        rolling back) is tried again by later ticks, ``ROLLBACK_TRIES`` times in all, waiting
        longer each time; then the unit fails, the rollout left for an operator."""
        record = _rollout(engine, key, answer.rollout)
        data = (record.get("data") or {}) if record else {}
        tries = int(data.get("rollback_attempts", ROLLBACK_TRIES))
        if tries >= ROLLBACK_TRIES:
            return answer
        when = self.clock.now() + ROLLBACK_RETRY_SECONDS * tries
        return TickAnswer(
            state="progressing",
            next_at=_when(when),
            reason=f"rolling back: attempt {tries} of {ROLLBACK_TRIES} did not finish, "
            f"trying again: {answer.reason}",
            rollout=answer.rollout,
        )


def _rollout(engine: Reconciler, key: str, rollout: str | None) -> Mapping[str, Any] | None:
    """Unit ``key``'s rollout ``rollout`` (None: its newest) as the state records it."""
    rollouts = engine.history(key, limit=5).get(key, {}).get("rollouts", [])
    for record in rollouts:
        if rollout is None or record.get("id") == rollout:
            return dict(record)
    return None


def _outcome(result: Any, key: str) -> str | None:
    entries = _get(result, "units", None) or {}
    entry = entries.get(key) if isinstance(entries, Mapping) else None
    return None if entry is None else _get(entry, "outcome", None)


def failure_of(engine: Reconciler, key: str, rollout: str | None) -> str:
    """Why unit ``key``'s rollout failed, as the state recorded it (a rollback a later tick
    finished reports no error of its own: the failure that started it is the rollout's)."""
    record = _rollout(engine, key, rollout)
    if record is None:
        return "failed (the state records no reason)"
    error = record.get("error")
    outcome = record.get("outcome") or record.get("phase") or "failed"
    return f"{outcome}: {error}" if error else str(outcome)


def answer_of(result: Any, key: str, now: float | None = None) -> TickAnswer:
    """The TickAnswer of unit ``key`` in a reconcile result (the shapes listed above);
    ``now`` (epoch seconds): a locked unit is asked again by ``LOCKED_RECHECK_SECONDS`` after
    it, at the latest (None: at the holder's lease end)."""
    entries = _get(result, "units", None) or {}
    entry = entries.get(key) if isinstance(entries, Mapping) else None
    if entry is None:
        raise ImmutableSdkError(f"{key}: the reconcile tick said nothing about this unit")
    raw = str(_get(entry, "state", ""))
    state = STATES.get(raw)
    if state is None:
        raise ImmutableSdkError(f"{key}: the reconcile tick answered an unknown state {raw!r}")
    raw_next = _get(entry, "next_at", None)
    if raw == "locked" and raw_next is not None:
        state = "progressing"  # ask again when the holder's lease ends (see the module doc)
        at = raw_next if isinstance(raw_next, (int, float)) else parse_time(raw_next)
        if now is not None and at is not None:
            raw_next = min(float(at), now + LOCKED_RECHECK_SECONDS)
    next_at = _when(raw_next)
    reason = _get(entry, "error", None) or ""
    if _get(entry, "outcome", None) == ROLLING_BACK:  # the rollback goes on in a later tick
        state = "progressing" if _get(entry, "next_at", None) is not None else "waiting"
        waiting_for = _get(entry, "waiting_for", None) or "its next step"
        why = f": {reason}" if reason else ""
        reason = f"rolling back, waiting for {waiting_for}{why}"
    if not reason and state == "waiting":
        waiting_for = _get(entry, "waiting_for", None)
        reason = f"{raw}: {waiting_for}" if waiting_for else raw
    return TickAnswer(
        state=state,
        next_at=next_at,
        reason=str(reason),
        rollout=_get(entry, "rollout", None),
    )


def _when(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=timezone.utc).isoformat()
    return str(value)


def _get(obj: Any, name: str, default: Any) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)
