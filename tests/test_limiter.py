"""The client-side rate limiter: token buckets per (service, region), hooked into every client."""

from __future__ import annotations

import threading

import pytest

from immutable_sdk.aws.limiter import Rate, RateLimiter
from immutable_sdk.aws.session import AwsSession
from immutable_sdk.clock import VirtualClock


def test_calls_beyond_the_burst_wait_for_the_refill_rate() -> None:
    clock = VirtualClock(start=0.0)  # a fake monotonic: sleeping moves it, instantly
    limiter = RateLimiter({"ec2": Rate(per_second=10, burst=5)}, clock=clock)
    times = []
    for _ in range(100):
        limiter.wait("ec2", "us-east-1")
        times.append(clock.monotonic())
    assert times[:5] == [0.0] * 5  # the burst goes at once
    assert abs(times[-1] - 9.5) < 1e-6  # then 10 per second: 95 more calls take 9.5 s
    for i, t in enumerate(times):  # never more than burst + rate * t calls by time t
        assert i + 1 <= 5 + 10 * t + 1e-6, (i, t)
    assert limiter.delayed["ec2"] == 95
    assert abs(limiter.waited - 9.5) < 1e-6  # each of them waited a tenth of a second


def test_each_service_and_region_has_its_own_bucket() -> None:
    clock = VirtualClock(start=0.0)
    limiter = RateLimiter({"ec2": Rate(1, 1), "auto-scaling": Rate(1, 1)}, clock=clock)
    for service, region in [
        ("ec2", "us-east-1"),
        ("ec2", "eu-west-1"),
        ("auto-scaling", "us-east-1"),
    ]:
        assert limiter.wait(service, region) == 0.0
    assert clock.monotonic() == 0.0
    assert limiter.wait("ec2", "us-east-1") == 1.0  # the second call in the same bucket waits


def test_a_bucket_refills_while_idle_up_to_its_burst() -> None:
    clock = VirtualClock(start=0.0)
    limiter = RateLimiter({}, default=Rate(2, 4), clock=clock)
    for _ in range(4):
        limiter.wait("x", "r")
    clock.advance(60)  # a long idle time refills only up to the burst
    waits = [limiter.wait("x", "r") for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, 0.0, 0.5]


class FrozenClock:
    """Time that stands still: concurrent callers all arrive at the same instant."""

    def now(self) -> float:
        return 0.0

    def monotonic(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        return None


def test_concurrent_callers_share_the_rate() -> None:
    clock = FrozenClock()
    limiter = RateLimiter({}, default=Rate(10, 1), clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def caller() -> None:
        for _ in range(25):
            w = limiter.wait("ec2", "us-east-1")
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    # 100 calls, 1 at once then 10 per second: each caller queued behind the previous one.
    assert sorted(waits) == pytest.approx([i / 10 for i in range(100)])


def test_every_client_of_a_session_goes_through_the_limiter(aws: str) -> None:
    clock = VirtualClock(start=0.0)
    limiter = RateLimiter({"ec2": Rate(5, 1)}, default=Rate(1000, 1000), clock=clock)
    session = AwsSession("us-east-1", endpoint_url=aws, limiter=limiter)
    for _ in range(6):
        session.client("ec2").describe_instances()
    session.client("ec2", "eu-west-1").describe_instances()  # another region: its own bucket
    session.client("autoscaling").describe_auto_scaling_groups()
    assert abs(clock.monotonic() - 1.0) < 1e-6  # 5 of the 6 us-east-1 calls waited 0.2 s
    assert limiter.delayed == {"ec2": 5}
    assert session.calls.total == 8


def test_sessions_limit_aws_and_leave_an_emulator_on_loopback_alone(aws: str) -> None:
    assert AwsSession("us-east-1").limiter is not None
    assert AwsSession("us-east-1", endpoint_url="https://ec2.example.com").limiter is not None
    assert AwsSession("us-east-1", endpoint_url=aws).limiter is None
    assert AwsSession("us-east-1", endpoint_url=aws, rate_limit=True).limiter is not None
