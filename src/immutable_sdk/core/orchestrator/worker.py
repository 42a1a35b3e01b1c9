"""A worker: takes Tick messages from the work queue, runs each tick, answers its task token.

Per message: the token is heartbeated first (a token whose task timed out, because a worker
died with it and Step Functions sent a new one, is dropped without ticking); then the tick
runs while a heartbeat thread tells Step Functions (and SQS, by keeping the message hidden)
that the worker is alive; then the answer goes back (``SendTaskSuccess`` with the tick's
answer, ``SendTaskFailure`` when the tick raised) and the message is deleted. A message that
is not a tick is left alone: after ``MAX_RECEIVES`` deliveries SQS moves it to the
dead-letter queue.

``stop()`` (SIGTERM) lets every tick in hand finish and answer, and takes no new message;
``run()`` returns as soon as no tick is in hand, without waiting for the long polls of its idle
threads to end (up to ``LONG_POLL`` seconds). A message such a poll receives as the process
exits stays hidden until the queue's visibility timeout: its task times out after its heartbeat
and is sent again, as if the worker had died.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...aws.workqueue import Message, TaskGone, WorkQueue
from ...clock import Clock, RealClock
from ...errors import ImmutableSdkError
from .definition import TICK_ERROR
from .resources import visibility_timeout
from .tick import Ticker, TickRequest

log = logging.getLogger(__name__)

WORKER_ERROR = "ImmutableSdk.WorkerError"  # a bug in the tick or the worker: not retried
LONG_POLL = 20  # seconds: SQS's longest wait, the fewest empty receives


@dataclass
class WorkerSummary:
    """What a worker did, by outcome: answered, failed, gone (token timed out), invalid."""

    outcomes: Counter[str] = field(default_factory=Counter)
    aws_calls: dict[str, int] = field(default_factory=dict)  # the worker's own: SQS, answers
    tick_calls: dict[str, int] = field(default_factory=dict)  # its ticks' (the rollouts')
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticks": dict(self.outcomes),
            "aws_calls": dict(self.aws_calls),
            "tick_calls": dict(self.tick_calls),
        }


class Worker:
    """Runs ticks from ``queue`` through ``ticker`` on ``concurrency`` threads."""

    def __init__(
        self,
        queue: WorkQueue,
        ticker: Ticker,
        *,
        concurrency: int = 1,
        idle_exit: float | None = None,
        clock: Clock | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.queue = queue
        self.ticker = ticker
        self.concurrency = max(1, concurrency)
        self.idle_exit = idle_exit
        self.clock = clock or RealClock()
        self.summary = WorkerSummary()
        self._on_event = on_event
        self._stop = threading.Event()
        self._last_message = self.clock.monotonic()
        self._lock = threading.Lock()
        self._busy = 0  # threads with a message in hand
        self._changed = threading.Condition(self._lock)  # a stop, or a message let go

    def stop(self, reason: str = "stop requested") -> None:
        """Finish the ticks in hand, take no more messages."""
        if not self._stop.is_set():
            self._emit("worker.stopping", reason=reason)
            self._stop.set()
            with self._changed:
                self._changed.notify_all()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> WorkerSummary:
        """Work until ``stop()`` or ``idle_exit`` seconds without a message."""
        threads = [
            threading.Thread(target=self._loop, name=f"tick-worker-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for t in threads:
            t.start()
        self._emit("worker.started", concurrency=self.concurrency, idle_exit=self.idle_exit)
        with self._changed:
            # once stopped, the threads left only wait for messages: they are not waited for
            while any(t.is_alive() for t in threads) and not (self.stopping and self._busy == 0):
                self._changed.wait(0.5)
        self.summary.aws_calls = self.queue.session.calls.snapshot()
        self.summary.tick_calls = dict(sorted(getattr(self.ticker, "aws_calls", {}).items()))
        return self.summary

    def _idle_for(self) -> float:
        with self._lock:
            return self.clock.monotonic() - self._last_message

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            wait = LONG_POLL
            if self.idle_exit is not None:
                left = self.idle_exit - self._idle_for()
                if left <= 0:
                    self.stop(f"idle for {self.idle_exit:g}s")
                    return
                wait = max(1, min(LONG_POLL, int(left + 0.999)))
            try:
                self._take(wait)
                failures = 0
            except Exception as exc:
                # AWS unreachable or refusing (throttled past retries, an expired session):
                # the messages in hand are redelivered and their ticks retried; keep serving
                failures = min(failures + 1, 6)
                self._emit("worker.error", error=f"{type(exc).__name__}: {exc}")
                log.debug("worker loop", exc_info=True)
                self.clock.sleep(min(30.0, 0.5 * 2**failures))

    def _take(self, wait: int) -> None:
        messages = self.queue.receive(wait, most=1)
        if not messages:
            return
        with self._lock:
            self._last_message = self.clock.monotonic()
            self._busy += 1
        try:
            for message in messages:
                if self._stop.is_set():
                    self.queue.hide(message, 0)  # another worker takes it at once
                else:
                    self.handle(message)
        finally:
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()

    def handle(self, message: Message) -> str:
        """Run the tick ``message`` asks for and answer it; the outcome's name."""
        try:
            request = TickRequest.from_message(message.body)
        except ImmutableSdkError as exc:
            # left for SQS's redrive policy: after a few deliveries, the dead-letter queue
            self._emit("tick.invalid", error=str(exc), receives=message.receives)
            self.summary.count("invalid")
            return "invalid"
        try:
            self.queue.heartbeat(request.token)
        except TaskGone as exc:
            self.queue.delete(message)
            self._emit("tick.gone", unit=request.unit, receives=message.receives, why=str(exc))
            self.summary.count("gone")
            return "gone"
        outcome = self._tick(request, message)
        self.queue.delete(message)
        self.summary.count(outcome)
        return outcome

    def _tick(self, request: TickRequest, message: Message) -> str:
        self._emit("tick.started", unit=request.unit, execution=request.execution)
        began = self.clock.monotonic()
        done = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat,
            args=(request, message, done),
            name=f"heartbeat-{request.unit}",
            daemon=True,
        )
        beat.start()
        try:
            answer = self.ticker.tick(request)
        except ImmutableSdkError as exc:
            return self._answer_failure(request, TICK_ERROR, str(exc), done, beat, began)
        except Exception as exc:  # a bug: say so in the execution's history, keep the worker
            log.exception("tick of %s failed", request.unit)
            cause = f"{type(exc).__name__}: {exc}"
            return self._answer_failure(request, WORKER_ERROR, cause, done, beat, began)
        done.set()
        beat.join()
        seconds = round(self.clock.monotonic() - began, 2)
        try:
            self.queue.succeed(request.token, answer.to_output())
        except TaskGone:
            self._emit("tick.gone", unit=request.unit, state=answer.state, seconds=seconds)
            return "gone"
        self._emit(
            "tick.answered",
            unit=request.unit,
            state=answer.state,
            next_at=answer.next_at,
            seconds=seconds,
        )
        return "answered"

    def _answer_failure(
        self,
        request: TickRequest,
        error: str,
        cause: str,
        done: threading.Event,
        beat: threading.Thread,
        began: float,
    ) -> str:
        done.set()
        beat.join()
        seconds = round(self.clock.monotonic() - began, 2)
        try:
            self.queue.fail(request.token, error, cause)
        except TaskGone:
            return "gone"
        self._emit("tick.failed", unit=request.unit, error=error, cause=cause, seconds=seconds)
        return "failed"

    def _heartbeat(self, request: TickRequest, message: Message, done: threading.Event) -> None:
        """Heartbeat the token and keep the message hidden until ``done``.

        Beats are spaced from one beat's start to the next (a third of the heartbeat timeout),
        so a slow answer from Step Functions does not push the next beat late."""
        interval = max(0.5, request.heartbeat_seconds / 3)
        beat_at = self.clock.monotonic() + interval
        while True:
            while (left := beat_at - self.clock.monotonic()) > 0:
                if done.is_set():
                    return
                self.clock.sleep(min(0.25, left))
            if done.is_set():
                return
            beat_at = max(beat_at, self.clock.monotonic()) + interval
            try:
                self.queue.heartbeat(request.token)
                self.queue.hide(message, visibility_timeout(request.heartbeat_seconds))
            except TaskGone:
                # the task timed out under this tick (a stalled process): the answer will be
                # refused too; the tick itself is idempotent, so a retry repeats nothing
                self._emit("tick.gone", unit=request.unit, during="heartbeat")
                return
            except Exception as exc:  # a lost heartbeat is retried at the next interval
                log.warning("heartbeat of %s failed: %s", request.unit, exc)

    def _emit(self, kind: str, **data: Any) -> None:
        if self._on_event is not None:
            self._on_event(kind, data)
        else:
            log.info("%s %s", kind, data)
