"""Request coalescing: concurrent lookups of different keys share one batched call.

Fifty fleets rolling out at once poll their Auto Scaling groups at about the same moments;
DescribeAutoScalingGroups takes 50 names a call, so they need not make fifty calls. A caller
that finds no call in flight makes one at once for its own keys and every key queued so far (it
never waits for company: no added latency, no timer); a caller that finds a call in flight
queues its keys, and when that call lands the first queued caller makes the next call, for the
whole queue. A failed call fails every caller it was made for, with the same error.

Used for Auto Scaling group describes (``aws.fleet``) and the built-in health checks' reads
(``ec2`` status calls, ``elb`` target health by target group, ``cloudwatch-alarm`` alarm
states): fleets whose gates and bakes poll at the same moment share them. ``shared`` gives the
one coalescer of a client (a region and its credentials) for a kind of read. Exported to plugins
as ``immutable_sdk.plugin.Coalescer`` and ``immutable_sdk.plugin.shared_coalescer``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
STAMP_SLACK = 1e-6  # seconds of clock rounding that do not make a read older
CACHE_LIMIT = 20_000  # values kept for reuse (``reads_fresh_since``), per coalescer


@dataclass(frozen=True)
class Freshness:
    """How old a shared read may be: fetched at clock time ``since`` or later; ``now`` is the
    caller's clock time (what a value it fetches is stamped with)."""

    since: float
    now: float
    period: float = 0.0  # the caller's tick: keys asked within one tick are read together


_FRESHNESS: ContextVar[Freshness | None] = ContextVar("immutable_sdk_freshness", default=None)


@contextmanager
def reads_fresh_since(since: float, now: float, period: float = 0.0) -> Iterator[None]:
    """Within the block, coalescers also serve values fetched at clock time ``since`` or
    later, by anyone (a bake's poll on a tick: every fleet polling in the same tick shares
    one read). Outside such a block a read is always made afresh (shared only with callers
    asking while it is in flight). Keys asked so within the last ``period`` are read along
    with any such read (one call for every fleet's alarms or instances, not one each)."""
    token = _FRESHNESS.set(Freshness(since, now, period))
    try:
        yield
    finally:
        _FRESHNESS.reset(token)


@dataclass
class _Request(Generic[K, V]):
    keys: list[K]
    fresh: Freshness | None = None
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
        self._cache: dict[K, tuple[V, float]] = {}  # key -> (value, clock time it was read at)
        self._watch: dict[K, float] = {}  # key -> when a fresh-read caller last asked for it
        self.fetches = 0  # calls of ``fetch`` made so far

    def get(self, keys: Sequence[K]) -> dict[K, V]:
        if not keys:
            return {}
        fresh = _FRESHNESS.get()
        request: _Request[K, V] = _Request(list(dict.fromkeys(keys)), fresh)
        with self._cv:
            if fresh is not None:
                for k in request.keys:
                    self._watch[k] = fresh.now
            hit = self._cached(request.keys, fresh)
            request.keys = [k for k in request.keys if k not in hit]
            if not request.keys:
                return hit
            self._queue.append(request)
            while self._busy and not request.done:
                self._cv.wait()
                if not request.done and request in self._queue:
                    # A call that landed meanwhile may have read what this caller needs.
                    more = self._cached(request.keys, fresh)
                    if len(more) == len(request.keys):
                        self._queue.remove(request)
                        return {**hit, **more}
            if not request.done:  # nothing in flight: this caller fetches for the queue
                self._busy = True
                batch, self._queue = self._queue, []
        if not request.done:
            self._run(batch)
        if request.error is not None:
            raise request.error
        return {**hit, **request.values}

    def _cached(self, keys: Sequence[K], fresh: Freshness | None) -> dict[K, V]:
        """Values of ``keys`` read at ``fresh.since`` or later (none without ``fresh``)."""
        if fresh is None or not self._cache:
            return {}
        out: dict[K, V] = {}
        for k in keys:
            entry = self._cache.get(k)
            if entry is not None and entry[1] >= fresh.since - STAMP_SLACK:
                out[k] = entry[0]
        return out

    def _fetch_with_watched(self, wanted: list[K], fresh: list[Freshness]) -> Mapping[K, V]:
        """``fetch(wanted)``; for fresh-read callers, with the keys other such callers asked
        for within their last tick (they will ask again this tick). A failure because of a
        watched key (gone since) is retried with ``wanted`` alone."""
        extra: list[K] = []
        with self._cv:
            if fresh:
                now = max(f.now for f in fresh)
                horizon = now - 1.5 * max(f.period for f in fresh)
                self._watch = {k: t for k, t in self._watch.items() if t >= horizon}
                asked = set(wanted)
                extra = [k for k in self._watch if k not in asked]
        self.fetches += 1
        if not extra:
            return self._fetch(wanted)
        try:
            return self._fetch([*wanted, *extra])
        except Exception:
            with self._cv:
                for k in extra:
                    self._watch.pop(k, None)
            self.fetches += 1
            return self._fetch(wanted)

    def _run(self, batch: list[_Request[K, V]]) -> None:
        fresh = [r.fresh for r in batch if r.fresh is not None]
        stamps = [f.now for f in fresh]
        wanted = list(dict.fromkeys(k for r in batch for k in r.keys))
        found: Mapping[K, V] = {}
        try:
            found = self._fetch_with_watched(wanted, fresh)
            for r in batch:
                r.values = {k: found[k] for k in r.keys}
        except BaseException as exc:
            for r in batch:
                r.error = exc
            found = {}
        finally:
            with self._cv:
                if stamps and found:  # read after every caller's ``now``: stamped with the last
                    if len(self._cache) > CACHE_LIMIT:
                        self._cache.clear()
                    stamp = max(stamps)
                    for k, v in found.items():
                        self._cache[k] = (v, stamp)
                for r in batch:
                    r.done = True
                self._busy = False
                self._cv.notify_all()


_shared: weakref.WeakKeyDictionary[Any, dict[str, Coalescer[Any, Any]]] = (
    weakref.WeakKeyDictionary()
)
_shared_lock = threading.Lock()


def shared_coalescer(
    client: Any, kind: str, make_fetch: Callable[[Any], Callable[[list[K]], Mapping[K, V]]]
) -> Coalescer[K, V]:
    """The one coalescer of ``client`` for reads of ``kind``, made on first use from
    ``make_fetch(client)``; it lives as long as the client (one per region and credentials),
    so every fleet polling through that client shares it.

    ``make_fetch`` is given a weak proxy of the client: the coalescer, held for the client,
    must not hold the client itself, or no client (with every service model its session
    loaded) would ever be freed in a process that makes clients again and again."""
    with _shared_lock:
        by_kind = _shared.get(client)
        if by_kind is None:
            by_kind = _shared[client] = {}
        coalescer = by_kind.get(kind)
        if coalescer is None:
            coalescer = by_kind[kind] = Coalescer(make_fetch(weakref.proxy(client)))
        return coalescer
