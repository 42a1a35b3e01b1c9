"""The SDK's own tick: one ``Engine.reconcile`` of one unit (the reconcile issue, #16).

ASSUMES (to be checked when the reconcile tick lands; everything else in the orchestrator only
knows ``UnitTick``):

* ``Engine.reconcile(fleets=[unit_key], start=True, budget=seconds)`` runs one tick of the
  unit: does every step that is due (starting the rollout the spec asks for when ``start``),
  spends at most about ``budget`` seconds, and is idempotent by journal and lock epoch;
* it returns an object with ``units`` (or ``fleets``): a mapping from unit key to an entry, or
  a sequence of entries with ``.key`` / ``.fleet``; an entry has ``state`` (``converged``,
  ``progressing``, ``waiting`` for an operator, ``failed``), ``next_at`` (ISO 8601 or None),
  ``reason`` (or ``error``) and ``rollout`` (its id, or None); entries may be dicts.

The budget keeps a tick well inside the Tick state's ``TimeoutSeconds``; an unfinished step
is picked up by the next tick.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ...errors import ImmutableSdkError
from .tick import TickAnswer, TickRequest


class Reconciler(Protocol):
    """What the adapter needs of an engine (``core.engine.Engine`` once #16 is merged)."""

    def reconcile(self, *, fleets: list[str], start: bool, budget: float) -> Any: ...


class ReconcileTick:
    """A ``UnitTick`` that runs ``Engine.reconcile`` for the unit of each request."""

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
            result = engine.reconcile(fleets=[request.unit], start=True, budget=self.budget)
        return answer_of(result, request.unit)


def answer_of(result: Any, key: str) -> TickAnswer:
    """The TickAnswer of unit ``key`` in a reconcile result (the shapes listed above)."""
    entries = _get(result, "units", None) or _get(result, "fleets", None) or {}
    entry: Any = None
    if isinstance(entries, Mapping):
        entry = entries.get(key)
    else:
        for candidate in entries:
            if key in (_get(candidate, "key", None), _get(candidate, "fleet", None)):
                entry = candidate
                break
    if entry is None:
        raise ImmutableSdkError(f"{key}: the reconcile tick said nothing about this unit")
    return TickAnswer(
        state=str(_get(entry, "state", "")),
        next_at=_get(entry, "next_at", None),
        reason=str(_get(entry, "reason", None) or _get(entry, "error", None) or ""),
        rollout=_get(entry, "rollout", None),
    )


def _get(obj: Any, name: str, default: Any) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)
