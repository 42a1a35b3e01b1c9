"""The webhook notifier: lifecycle hooks enqueue, one background thread delivers.

A rollout never waits for the endpoint: each hook serialises its event and puts it on a bounded
queue without blocking (a full queue drops the event and counts it). One delivery thread posts
the events in order, each attempt bounded by ``timeout``, retrying a failed one with doubling
backoff. ``close`` (called when the engine closes) lets the thread deliver what is queued until
``flush_timeout`` has passed, then gives up on the rest and counts it as dropped.

The thread waits in real time (``threading.Event.wait``), not on the engine's clock: the
endpoint lives in real time, and a virtual clock in tests must not be advanced from here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from immutable_sdk.plugin import RolloutInfo, Step, hookimpl

from .delivery import post

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    url: str
    secret: bytes | None = None
    timeout: float = 5.0  # seconds per attempt
    retries: int = 3  # attempts after the first
    backoff: float = 1.0  # seconds before the first retry; doubles, capped at MAX_BACKOFF
    queue_size: int = 1000
    flush_timeout: float = 10.0  # seconds close() may take


MAX_BACKOFF = 60.0


@dataclass
class Stats:
    delivered: int = 0
    failed: int = 0  # given up after the last attempt, or refused (4xx)
    dropped: int = 0  # never attempted: the queue was full, or close() ran out of time
    attempts: int = 0


@dataclass(frozen=True)
class _Delivery:
    event: str
    body: bytes


class WebhookNotifier:
    """A notifier (see ``immutable_sdk.plugin.Notifier``) posting events to one URL."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats = Stats()
        self._queue: queue.Queue[_Delivery | None] = queue.Queue(maxsize=settings.queue_size)
        self._sequence = 0
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()  # set: abandon the queue now
        self._deadline: float | None = None  # monotonic time by which close() must be done
        self._closed = False
        self._thread = threading.Thread(
            target=self._deliver_all, name="immutable-sdk-webhook", daemon=True
        )
        self._thread.start()

    # --- the notify hooks: serialise and enqueue, never block, never raise ------------------

    @hookimpl
    def immutable_sdk_rollout_started(self, rollout: RolloutInfo) -> None:
        self._enqueue("rollout_started", rollout)

    @hookimpl
    def immutable_sdk_step_started(self, rollout: RolloutInfo, step: Step) -> None:
        self._enqueue("step_started", rollout, step=step.to_dict())

    @hookimpl
    def immutable_sdk_step_finished(self, rollout: RolloutInfo, step: Step, outcome: str) -> None:
        self._enqueue("step_finished", rollout, step=step.to_dict(), outcome=outcome)

    @hookimpl
    def immutable_sdk_traffic_shifted(
        self, rollout: RolloutInfo, before: Mapping[str, int], after: Mapping[str, int]
    ) -> None:
        self._enqueue("traffic_shifted", rollout, before=dict(before), after=dict(after))

    @hookimpl
    def immutable_sdk_rollback_started(self, rollout: RolloutInfo, reason: str) -> None:
        self._enqueue("rollback_started", rollout, reason=reason)

    @hookimpl
    def immutable_sdk_rollout_finished(self, rollout: RolloutInfo, outcome: str) -> None:
        self._enqueue("rollout_finished", rollout, outcome=outcome)

    def _enqueue(self, event: str, rollout: RolloutInfo, **data: Any) -> None:
        try:
            with self._lock:
                if self._closed:
                    return
                payload = {
                    "event": event,
                    "sequence": self._sequence,
                    "at": time.time(),
                    "rollout": asdict(rollout),
                    **data,
                }
                body = json.dumps(payload, sort_keys=True, default=str).encode()
                try:
                    self._queue.put_nowait(_Delivery(event, body))
                except queue.Full:
                    self._count("dropped")
                    return
                self._sequence += 1
        except Exception:  # a notifier must never fail a rollout
            log.exception("webhook: could not enqueue %s", event)

    # --- delivery ---------------------------------------------------------------------------

    def _deliver_all(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            self._deliver(item)

    def _remaining(self) -> float:
        """Seconds left before close()'s deadline (infinite while not closing)."""
        if self._deadline is None:
            return float("inf")
        return self._deadline - time.monotonic()

    def _deliver(self, item: _Delivery) -> None:
        s = self.settings
        delay = s.backoff
        for attempt in range(s.retries + 1):
            budget = min(s.timeout, self._remaining())
            if self._stop.is_set() or budget <= 0:
                self._count("dropped")
                return
            self._count("attempts")
            answer = post(s.url, item.body, item.event, s.secret, budget)
            if answer.ok:
                self._count("delivered")
                return
            if not answer.retryable or attempt == s.retries:
                self._count("failed")
                log.warning("webhook: %s not delivered to %s: %s", item.event, s.url, answer.error)
                return
            if delay > self._remaining() or self._stop.wait(delay):
                self._count("dropped")
                return
            delay = min(delay * 2, MAX_BACKOFF)

    # --- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Deliver what is queued within ``flush_timeout``; then abandon the rest."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._deadline = time.monotonic() + self.settings.flush_timeout
        with contextlib.suppress(queue.Full):  # the thread stays busy past the deadline
            self._queue.put(None, timeout=max(self._remaining(), 0))
        self._thread.join(max(self._remaining(), 0))
        if self._thread.is_alive():
            self._stop.set()
            abandoned = 0
            while True:
                try:
                    abandoned += self._queue.get_nowait() is not None
                except queue.Empty:
                    break
            self._queue.put_nowait(None)  # wakes the thread if it comes back for more
            self._count("dropped", abandoned)
            log.warning("webhook: %d event(s) not delivered before the flush deadline", abandoned)

    def _count(self, stat: str, n: int = 1) -> None:
        with self._stats_lock:
            setattr(self.stats, stat, getattr(self.stats, stat) + n)
