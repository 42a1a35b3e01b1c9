"""A client-side rate limiter: one token bucket per (service, region), shared by all clients.

AWS throttles API calls per account, region and service with token buckets (EC2 documents
them; Auto Scaling, ELB, CloudWatch and Route 53 publish per-second quotas). Tens of fleets
rolled out in parallel from one process must not spend that budget faster than it refills, or
every call in the account (the CI's, the console's, other tools') gets throttled. The limiter
waits before an HTTP request leaves (botocore's ``before-send`` event, so retries count too)
until its bucket has a token.

Time: rate limits are about requests on the wire, so the limiter waits in *real* time (a
``RealClock`` by default), whatever clock the rollout runs on. Under a ``VirtualClock`` a
participant thread waiting here holds virtual time still: API calls take no virtual time, and
the wait shows in wall time only.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..clock import Clock, RealClock


@dataclass(frozen=True)
class Rate:
    """``per_second`` sustained, up to ``burst`` at once."""

    per_second: float
    burst: float


# Keys are botocore's service ids as they appear in event names (hyphenated, lowercase).
DEFAULT_RATES: Mapping[str, Rate] = {
    # EC2's documented bucket for non-mutating actions: 100 tokens, refilled 20 per second.
    "ec2": Rate(20.0, 100.0),
    # Auto Scaling and ELB publish no numbers; these stay well below what accounts observe.
    "auto-scaling": Rate(10.0, 40.0),
    "elastic-load-balancing-v2": Rate(10.0, 40.0),
    "elastic-load-balancing": Rate(10.0, 40.0),
    # CloudWatch: DescribeAlarms 9 TPS (the lowest of the calls health checks make).
    "cloudwatch": Rate(9.0, 20.0),
    # Route 53: five requests per second per account.
    "route-53": Rate(5.0, 5.0),
    "dynamodb": Rate(200.0, 400.0),
    "sts": Rate(50.0, 100.0),
}
DEFAULT_RATE = Rate(10.0, 40.0)
GLOBAL_SERVICES = frozenset({"route-53", "iam"})  # one bucket per account, whatever the region


@dataclass
class _Bucket:
    rate: Rate
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """Take a token; return how long to wait for it (0: at once).

        A caller that must wait takes the token in advance (the count goes negative), so that
        concurrent callers queue behind each other instead of all waking for the same token.
        """
        self.tokens = min(self.rate.burst, self.tokens + (now - self.stamp) * self.rate.per_second)
        self.stamp = now
        self.tokens -= 1.0
        if self.tokens >= 0:
            return 0.0
        return -self.tokens / self.rate.per_second


class RateLimiter:
    """Token buckets per (service, region); thread-safe. ``wait`` blocks until a call may go."""

    def __init__(
        self,
        rates: Mapping[str, Rate] | None = None,
        *,
        default: Rate = DEFAULT_RATE,
        clock: Clock | None = None,
    ) -> None:
        self.rates = dict(DEFAULT_RATES if rates is None else rates)
        self.default = default
        self.clock = clock or RealClock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()
        self.delayed: Counter[str] = Counter()  # calls that had to wait, by service
        self.waited = 0.0  # seconds spent waiting, all threads together

    def wait(self, service: str, region: str) -> float:
        """Block until a call to ``service`` in ``region`` may go; returns the seconds waited."""
        with self._lock:
            now = self.clock.monotonic()
            bucket = self._buckets.get((service, region))
            if bucket is None:
                rate = self.rates.get(service, self.default)
                bucket = _Bucket(rate, rate.burst, now)
                self._buckets[(service, region)] = bucket
            delay = bucket.take(now)
            if delay > 0:
                self.delayed[service] += 1
                self.waited += delay
        if delay > 0:
            self.clock.sleep(delay)
        return delay

    def on_send(self, request: Any = None, event_name: str = "", **_: Any) -> None:
        """botocore ``before-send`` handler (event ``before-send.<service-id>.<Operation>``)."""
        parts = event_name.split(".")
        service = parts[1] if len(parts) > 2 else "unknown"
        context = getattr(request, "context", None) or {}
        region = str(context.get("client_region") or "global")
        if service in GLOBAL_SERVICES:
            region = "global"
        self.wait(service, region)

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"waited_seconds": self.waited, "delayed_calls": dict(self.delayed)}
