"""Request coalescing: concurrent lookups of different keys share one batched call.

Fifty fleets rolling out at once poll their Auto Scaling groups at about the same moments;
DescribeAutoScalingGroups takes 50 names a call, so they need not make fifty calls. A caller
that finds no call in flight makes one at once for its own keys and every key queued so far (it
never waits for company: no added latency, no timer); a caller that finds a call in flight
queues its keys, and when that call lands the first queued caller makes the next call, for the
whole queue. A failed call fails every caller it was made for, with the same error.

Used for Auto Scaling group describes (``aws.fleet``) and the ``ec2`` health check's status
calls; exported to plugins as ``immutable_sdk.plugin.Coalescer``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Request(Generic[K, V]):
    keys: list[K]
    values: dict[K, V] = field(default_factory=dict)
    error: BaseException | None = None
    done: bool = False


class Coalescer(Generic[K, V]):
    """``get(keys)`` through ``fetch(keys) -> {key: value}``, merging concurrent callers."""

    def __init__(self, fetch: Callable[[list[K]], Mapping[K, V]]) -> None:
        self._fetch = fetch
        self._cv = threading.Condition()
        self._queue: list[_Request[K, V]] = []
        self._busy = False
        self.fetches = 0  # calls of ``fetch`` made so far

    def get(self, keys: Sequence[K]) -> dict[K, V]:
        if not keys:
            return {}
        request: _Request[K, V] = _Request(list(keys))
        with self._cv:
            self._queue.append(request)
            while self._busy and not request.done:
                self._cv.wait()
            if not request.done:  # nothing in flight: this caller fetches for the queue
                self._busy = True
                batch, self._queue = self._queue, []
        if not request.done:
            self._run(batch)
        if request.error is not None:
            raise request.error
        return request.values

    def _run(self, batch: list[_Request[K, V]]) -> None:
        try:
            self.fetches += 1
            found = self._fetch(list(dict.fromkeys(k for r in batch for k in r.keys)))
            for r in batch:
                r.values = {k: found[k] for k in r.keys}
        except BaseException as exc:
            for r in batch:
                r.error = exc
        finally:
            with self._cv:
                for r in batch:
                    r.done = True
                self._busy = False
                self._cv.notify_all()
