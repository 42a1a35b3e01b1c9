"""The webhook notifier: lifecycle hooks enqueue, one background thread delivers.

A rollout never waits for the endpoint. Each hook serialises its event (numbered by
``sequence``, counting every event of the engine, and identified by ``event_id``, the same in
every process and every attempt, also sent as the ``Idempotency-Key`` header) and appends it
to a bounded queue. One
delivery thread posts the events in order, each attempt bounded as a whole by ``timeout``.

Every event ends either delivered or lost, and every loss is counted by its reason:

* ``refused``: the endpoint answered 4xx (but 408 and 429), not retried;
* ``redirected``: the endpoint answered 3xx; redirects are never followed;
* ``unreachable``: no answer, 5xx, 408 or 429 on every attempt (the first and ``retries``
  more, ``backoff`` before the first retry, doubling, at most ``MAX_BACKOFF``). Once an event
  is lost that way, later ones get a single attempt each until one is delivered again: an
  endpoint that is down costs a rollout's events seconds, not minutes each;
* ``queue_full``: more than ``queue_size`` events waited; the oldest waiting one gives way, so
  the latest (the rollout's outcome) are the ones kept. The receiver sees a gap in
  ``sequence``;
* ``shutdown``: still queued, or in flight, when ``close()``'s ``flush_timeout`` ran out (one
  in flight may still have arrived);
* ``unserialisable``: the event could not be made into JSON (a bug: never expected).

The first loss of each reason is logged as a warning when it happens; ``close()`` logs a
summary (a warning when anything was lost) with the counts. Messages name the endpoint by its
scheme and host only (``delivery.redacted``) and go through the SDK's structured logging.

The thread waits in real time (``threading.Condition.wait``), not on the engine's clock: the
endpoint lives in real time, and a virtual clock in tests must not be advanced from here.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from immutable_sdk.plugin import RolloutInfo, Step, get_logger, hookimpl

from .delivery import Answer, post, redacted

MAX_BACKOFF = 30.0
LOSSES = ("refused", "redirected", "unreachable", "queue_full", "shutdown", "unserialisable")


@dataclass(frozen=True)
class Settings:
    url: str = field(repr=False)  # may carry a secret (Slack): never logged, never in a repr
    secret: bytes | None = field(default=None, repr=False)
    timeout: float = 5.0  # seconds per attempt, connect to last byte of the answer
    retries: int = 3  # attempts after the first
    backoff: float = 1.0  # seconds before the first retry; doubles, capped at MAX_BACKOFF
    queue_size: int = 1000
    flush_timeout: float = 10.0  # seconds close() may take
    proxy: str | None = field(default=None, repr=False)  # http://host:port, may carry a password

    @property
    def target(self) -> str:
        """How messages name the endpoint: scheme and host."""
        return redacted(self.url)


@dataclass
class Stats:
    events: int = 0  # handed to the notifier by the hooks
    delivered: int = 0
    attempts: int = 0
    lost: Counter[str] = field(default_factory=Counter)  # reason -> events

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())


@dataclass(frozen=True)
class _Delivery:
    event: str
    sequence: int
    body: bytes
    event_id: str = ""


class WebhookNotifier:
    """A notifier (see ``immutable_sdk.plugin.Notifier``) posting events to one URL."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats = Stats()
        self._log = get_logger(notifier="webhook", target=settings.target)
        self._cond = threading.Condition()
        self._pending: deque[_Delivery] = deque()
        self._in_flight: _Delivery | None = None
        self._closing = False  # no more events; deliver what is queued until the deadline
        self._abandoned = False  # the deadline passed: the thread stops at its next look
        self._deadline: float | None = None  # monotonic time by which close() must be done
        self._failing = False  # the last event was lost unreachable: one attempt per event
        self._warned: set[str] = set()
        self._thread = threading.Thread(
            target=self._deliver_all, name="immutable-sdk-webhook", daemon=True
        )
        self._thread.start()

    # --- the notify hooks: serialise and enqueue, never block, never raise ------------------

    @hookimpl
    def immutable_sdk_rollout_started(self, rollout: RolloutInfo, event_id: str) -> None:
        self._enqueue("rollout_started", rollout, event_id)

    @hookimpl
    def immutable_sdk_step_started(self, rollout: RolloutInfo, step: Step, event_id: str) -> None:
        self._enqueue("step_started", rollout, event_id, step=step.to_dict())

    @hookimpl
    def immutable_sdk_step_finished(
        self, rollout: RolloutInfo, step: Step, outcome: str, event_id: str
    ) -> None:
        self._enqueue("step_finished", rollout, event_id, step=step.to_dict(), outcome=outcome)

    @hookimpl
    def immutable_sdk_traffic_shifted(
        self,
        rollout: RolloutInfo,
        before: Mapping[str, int],
        after: Mapping[str, int],
        event_id: str,
    ) -> None:
        self._enqueue("traffic_shifted", rollout, event_id, before=dict(before), after=dict(after))

    @hookimpl
    def immutable_sdk_rollback_started(
        self, rollout: RolloutInfo, reason: str, event_id: str
    ) -> None:
        self._enqueue("rollback_started", rollout, event_id, reason=reason)

    @hookimpl
    def immutable_sdk_rollout_finished(
        self, rollout: RolloutInfo, outcome: str, event_id: str
    ) -> None:
        self._enqueue("rollout_finished", rollout, event_id, outcome=outcome)

    def _enqueue(self, event: str, rollout: RolloutInfo, event_id: str, **data: Any) -> None:
        try:
            with self._cond:
                sequence = self.stats.events
                self.stats.events += 1
                if self._closing:  # the engine closed: too late to deliver
                    self._lose("shutdown", event)
                    return
                payload = {
                    "event": event,
                    "event_id": event_id,
                    "sequence": sequence,
                    "at": time.time(),
                    "rollout": asdict(rollout),
                    **data,
                }
                body = json.dumps(payload, sort_keys=True, default=str).encode()
                if len(self._pending) >= self.settings.queue_size:
                    oldest = self._pending.popleft()
                    self._lose("queue_full", oldest.event)
                self._pending.append(_Delivery(event, sequence, body, event_id))
                self._cond.notify()
        except Exception as exc:  # a notifier must never fail a rollout
            with self._cond:
                self._lose("unserialisable", event, error=repr(exc))

    # --- delivery ---------------------------------------------------------------------------

    def _deliver_all(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if self._abandoned or not self._pending:
                    return
                item = self._in_flight = self._pending.popleft()
            try:
                reason, error = self._deliver(item)
            except Exception as exc:  # a bug here must not stop delivery of the rest
                reason, error = "unreachable", repr(exc)
            with self._cond:
                if self._in_flight is not item:  # close() gave up on it and counted it
                    return
                self._in_flight = None
                if reason is None:
                    self.stats.delivered += 1
                    self._failing = False
                else:
                    self._lose(reason, item.event, error=error)
                    self._failing = reason == "unreachable"

    def _remaining(self) -> float:
        """Seconds left before close()'s deadline (infinite while not closing)."""
        with self._cond:
            deadline = self._deadline
        return float("inf") if deadline is None else deadline - time.monotonic()

    def _deliver(self, item: _Delivery) -> tuple[str | None, str]:
        """Attempt ``item`` until delivered or lost: (None, "") or (reason, last error)."""
        s = self.settings
        delay = s.backoff
        answer = Answer(None, "not attempted")
        attempts = 1 if self._failing else s.retries + 1
        for attempt in range(attempts):
            budget = min(s.timeout, self._remaining())
            if budget <= 0:
                return "shutdown", "the flush deadline passed"
            with self._cond:
                self.stats.attempts += 1
            answer = post(
                s.url, item.body, item.event, s.secret, budget, s.proxy, event_id=item.event_id
            )
            if answer.ok:
                return None, ""
            if answer.redirected:
                return "redirected", answer.error
            if not answer.retryable:
                return "refused", answer.error
            if attempt == attempts - 1:
                break
            if delay >= self._remaining():
                return "shutdown", f"the flush deadline passed while retrying ({answer.error})"
            with self._cond:
                if self._cond.wait_for(lambda: self._abandoned, timeout=delay):
                    return "shutdown", "the flush deadline passed"
            delay = min(delay * 2, MAX_BACKOFF)
        return "unreachable", answer.error

    def _lose(self, reason: str, event: str, error: str = "") -> None:
        """Count a lost event (called with the condition held); warn at the first of a kind."""
        self.stats.lost[reason] += 1
        if reason not in self._warned and reason != "shutdown":  # close() reports those
            self._warned.add(reason)
            self._log.warning(
                "webhook.event_lost", reason=reason, lost_event=event, error=error or None
            )

    # --- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Deliver what is queued within ``flush_timeout``; then count the rest as lost and
        log a summary of the whole run."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._deadline = time.monotonic() + self.settings.flush_timeout
            self._cond.notify_all()
        self._thread.join(max(self.settings.flush_timeout, 0))
        with self._cond:
            self._abandoned = True
            abandoned = len(self._pending) + (self._in_flight is not None)
            self._pending.clear()
            self._in_flight = None
            if abandoned:
                self.stats.lost["shutdown"] += abandoned
            self._cond.notify_all()
            stats = self.stats
            lost = {reason: stats.lost[reason] for reason in LOSSES if stats.lost[reason]}
            summary = {
                "events": stats.events,
                "delivered": stats.delivered,
                "lost": stats.lost_total,
                "lost_by_reason": lost,
                "attempts": stats.attempts,
            }
        if lost:
            self._log.warning("webhook.events_lost", **summary)
        else:
            self._log.info("webhook.events_delivered", **summary)
