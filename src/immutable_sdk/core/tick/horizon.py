"""How long one process may wait: everything (``apply``) or a tick's budget (``reconcile``).

A ``Horizon`` is shared by every stack and runner of an engine. ``apply`` leaves it unlimited:
every wait runs in process through the clock, as it always did. ``Engine.reconcile`` opens a
tick (``tick(budget)``): polls that would end after the budget (gate polls, instances coming in
service, drains) and every named wait (``NAMED``) raise ``Suspended`` instead of sleeping. The
runner journals the wait (an absolute deadline, or what it waits for) and releases the fleet's
lock; the next tick, in this process or another, continues from the journal and the clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ...clock import Clock

# Waits a tick never sleeps through: journaled as deadlines (or as waits for an operator).
NAMED = ("bake", "pause", "operator", "analysis", "ttl", "keep_previous", "wave_bake", "grace")
OPERATOR = "operator"  # a manual pause, an inconclusive analysis: ``promote`` goes on


class Suspended(Exception):
    """A tick stops a rollout at a safe point: it goes on at ``next_at`` (epoch seconds; None:
    when an operator acts) in any process. ``waiting_for``: what it waits for (``bake``,
    ``pause``, ``operator``, ``gate``, ``instances``...); ``detail``: journaled facts (the
    wait's ``since`` and ``until``, a gate's start)."""

    def __init__(
        self, next_at: float | None, waiting_for: str, detail: Mapping[str, Any] | None = None
    ) -> None:
        self.next_at = next_at
        self.waiting_for = waiting_for
        self.detail = dict(detail or {})
        # filled by the runner that journals the stop
        self.rollout: str | None = None
        self.step: str | None = None
        self.releases: tuple[str | None, str | None] = (None, None)  # (from, to)
        self.rolling_back = False  # the wait is one of a rollback's (the rollout failed)
        when = "an operator" if next_at is None else f"{next_at:.3f}"
        super().__init__(f"waiting for {waiting_for} until {when}")


@dataclass
class Horizon:
    """Unlimited (``apply``) or a tick's budget on the engine's clock (``reconcile``)."""

    _deadline: float | None = None  # clock.monotonic() when the tick's budget ends
    _clock: Clock | None = None

    @property
    def unlimited(self) -> bool:
        return self._deadline is None

    @contextmanager
    def tick(self, clock: Clock, budget: float) -> Iterator[None]:
        """Within the block, waits suspend instead of outlasting ``budget`` seconds."""
        self._clock, self._deadline = clock, clock.monotonic() + budget
        try:
            yield
        finally:
            self._deadline = None

    def left(self) -> float:
        """Seconds of the tick's budget left (infinite when unlimited)."""
        if self._deadline is None or self._clock is None:
            return float("inf")
        return self._deadline - self._clock.monotonic()

    def poll(self, clock: Clock, seconds: float, waiting_for: str, **detail: Any) -> None:
        """Before a poll's wait of ``seconds``: Suspended when the tick's budget would end
        first (the next tick polls again at ``now + seconds``)."""
        if seconds > 0 and seconds > self.left():
            raise Suspended(clock.now() + seconds, waiting_for, detail)
