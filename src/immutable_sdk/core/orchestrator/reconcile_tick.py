"""The SDK's own tick: one ``Engine.reconcile`` of one unit (the reconcile issue, #16).

Written against ``Engine.reconcile`` as branch is-16 has it (commit 03f224c); the rest of the
orchestrator knows only ``Ticker``. What it relies on:

* ``engine.reconcile(start=True, budget=seconds, units=[unit_key])`` runs one tick of the
  unit: every step due now, the rollout the spec needs started, polls stopped after about
  ``budget`` seconds; idempotent by journal and lock epoch;
* the result's ``units`` maps the unit key to an entry with ``state`` (``converged``,
  ``progressing``, ``waiting_for_operator``, ``failed``, ``locked``), ``next_at`` (epoch
  seconds, or ISO 8601, or None), ``error``, ``waiting_for`` and ``rollout``; entries may be
  objects or dicts (``ReconcileResult.to_dict()``'s shape).
  A ``locked`` unit with a ``next_at`` (when the holder's lease ends) answers ``progressing``
  until then, not ``waiting``: a tick whose worker died holds the fleet's lock until its lease
  runs out (an AWS request of it may still be in flight); the tick asked again then takes the
  lock over and resumes the rollout from its journal. A live holder renews its lease: the unit
  is asked again at the new lease's end.

``waiting_for_operator`` and ``locked`` become ``waiting``: the state machine asks again after
its poll interval. The budget keeps a tick well inside the Tick state's ``TimeoutSeconds``; a
step left unfinished is picked up by the next tick.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import Any, Protocol

from ...errors import ImmutableSdkError
from .tick import TickAnswer, TickRequest

STATES = {
    "converged": "converged",
    "progressing": "progressing",
    "waiting_for_operator": "waiting",
    "locked": "waiting",
    "failed": "failed",
}


class Reconciler(Protocol):
    """What the adapter needs of an engine (``core.engine.Engine`` once #16 is merged)."""

    def reconcile(self, *, start: bool, budget: float, units: list[str]) -> Any: ...


class ReconcileTick:
    """A ``Ticker`` that runs ``Engine.reconcile`` for the unit of each request."""

    def __init__(
        self,
        open_engine: Callable[[], AbstractContextManager[Reconciler]],
        *,
        spec_digests: Mapping[str, str] | None = None,
        budget: float = 600.0,
    ) -> None:
        self._open_engine = open_engine
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
        calls = _get(_get(result, "api_calls", None) or {}, "by_operation", None) or {}
        with self._lock:
            self.aws_calls.update(calls)
        return answer_of(result, request.unit)


def answer_of(result: Any, key: str) -> TickAnswer:
    """The TickAnswer of unit ``key`` in a reconcile result (the shapes listed above)."""
    entries = _get(result, "units", None) or {}
    entry = entries.get(key) if isinstance(entries, Mapping) else None
    if entry is None:
        raise ImmutableSdkError(f"{key}: the reconcile tick said nothing about this unit")
    raw = str(_get(entry, "state", ""))
    state = STATES.get(raw)
    if state is None:
        raise ImmutableSdkError(f"{key}: the reconcile tick answered an unknown state {raw!r}")
    next_at = _when(_get(entry, "next_at", None))
    if raw == "locked" and next_at is not None:
        state = "progressing"  # ask again when the holder's lease ends (see the module doc)
    reason = _get(entry, "error", None) or ""
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
