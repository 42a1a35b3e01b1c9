"""The notifier on its own against a real endpoint: order, signatures, retries, drops, flush."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from immutable_sdk_webhook.delivery import SIGNATURE_HEADER, verify
from immutable_sdk_webhook.notifier import Settings, WebhookNotifier

from immutable_sdk.plugin import Gate, RolloutInfo

INFO = RolloutInfo(
    id="ro-1-abc",
    project="shop",
    fleet="web",
    strategy="rolling",
    from_release=None,
    to_release="r-1",
    region="eu-west-1",
)


def fire(notifier: WebhookNotifier, n: int) -> float:
    """Send n step events; return the seconds the hook calls took together."""
    start = time.monotonic()
    for _ in range(n):
        notifier.immutable_sdk_step_finished(rollout=INFO, step=Gate(), outcome="ok")
    return time.monotonic() - start


def test_events_arrive_in_order_signed_and_whole(endpoint: Any) -> None:
    server = endpoint()
    notifier = WebhookNotifier(Settings(server.url, secret=b"s3cret"))
    notifier.immutable_sdk_rollout_started(rollout=INFO)
    notifier.immutable_sdk_step_started(rollout=INFO, step=Gate(slot="blue"))
    notifier.immutable_sdk_traffic_shifted(
        rollout=INFO, before={"blue": 100, "green": 0}, after={"blue": 90, "green": 10}
    )
    notifier.immutable_sdk_rollback_started(rollout=INFO, reason="gate failed")
    notifier.immutable_sdk_rollout_finished(rollout=INFO, outcome="rolled_back")
    notifier.close()
    bodies = [json.loads(r.body) for r in server.received]
    assert [b["event"] for b in bodies] == [
        "rollout_started",
        "step_started",
        "traffic_shifted",
        "rollback_started",
        "rollout_finished",
    ]
    assert [b["sequence"] for b in bodies] == [0, 1, 2, 3, 4]
    assert bodies[0]["rollout"] == {
        "id": "ro-1-abc",
        "project": "shop",
        "fleet": "web",
        "strategy": "rolling",
        "from_release": None,
        "to_release": "r-1",
        "rollback": False,
        "region": "eu-west-1",
    }
    assert bodies[1]["step"] == {"kind": "gate", "slot": "blue"}
    assert bodies[2]["after"] == {"blue": 90, "green": 10}
    assert bodies[3]["reason"] == "gate failed" and bodies[4]["outcome"] == "rolled_back"
    for r in server.received:
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers["X-Immutable-Sdk-Event"] == json.loads(r.body)["event"]
        assert verify(b"s3cret", r.body, r.headers[SIGNATURE_HEADER])
        assert not verify(b"other", r.body, r.headers[SIGNATURE_HEADER])
    assert (notifier.stats.delivered, notifier.stats.failed, notifier.stats.dropped) == (5, 0, 0)


def test_without_a_secret_there_is_no_signature(endpoint: Any) -> None:
    server = endpoint()
    notifier = WebhookNotifier(Settings(server.url))
    notifier.immutable_sdk_rollout_started(rollout=INFO)
    notifier.close()
    assert len(server.received) == 1
    assert SIGNATURE_HEADER not in server.received[0].headers


def test_a_server_error_is_retried_with_doubling_backoff(endpoint: Any) -> None:
    server = endpoint(lambda n: (500, 0.0) if n < 3 else (200, 0.0))
    notifier = WebhookNotifier(Settings(server.url, backoff=0.1, retries=3))
    notifier.immutable_sdk_rollout_started(rollout=INFO)
    notifier.immutable_sdk_rollout_finished(rollout=INFO, outcome="promoted")
    notifier.close()
    got = server.received
    assert len(got) == 5
    assert got[0].body == got[1].body == got[2].body == got[3].body != got[4].body
    gaps = [b.at - a.at for a, b in itertools.pairwise(got[:4])]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4, gaps
    assert gaps[2] < 2.0, gaps
    assert (notifier.stats.delivered, notifier.stats.attempts) == (2, 5)


def test_a_refusal_is_not_retried_and_the_next_event_goes_on(endpoint: Any) -> None:
    server = endpoint(lambda n: (404, 0.0) if n == 0 else (200, 0.0))
    notifier = WebhookNotifier(Settings(server.url, backoff=0.01))
    notifier.immutable_sdk_rollout_started(rollout=INFO)
    notifier.immutable_sdk_rollout_finished(rollout=INFO, outcome="promoted")
    notifier.close()
    assert [json.loads(r.body)["event"] for r in server.received] == [
        "rollout_started",
        "rollout_finished",
    ]
    assert (notifier.stats.failed, notifier.stats.delivered) == (1, 1)


def test_a_full_queue_drops_and_counts_without_blocking(endpoint: Any) -> None:
    server = endpoint(lambda n: (200, 0.3))
    notifier = WebhookNotifier(Settings(server.url, queue_size=2, flush_timeout=5))
    took = fire(notifier, 20)
    assert took < 0.1, took
    notifier.close()
    stats = notifier.stats
    assert stats.delivered == len(server.received)
    assert stats.delivered + stats.dropped == 20
    assert 2 <= stats.delivered <= 3 and stats.dropped >= 17


def test_closing_waits_at_most_the_flush_timeout(endpoint: Any) -> None:
    server = endpoint(lambda n: (200, 3.0))
    notifier = WebhookNotifier(Settings(server.url, timeout=5, flush_timeout=0.5))
    fire(notifier, 5)
    # The first event in flight before closing (else its post only gets close()'s deadline)
    waited = time.monotonic()
    while not server.received and time.monotonic() - waited < 5:
        time.sleep(0.01)
    assert len(server.received) == 1
    start = time.monotonic()
    notifier.close()
    assert time.monotonic() - start < 1.0
    # The four still queued are dropped; the one in flight is counted when its answer comes.
    assert notifier.stats.delivered == 0 and notifier.stats.dropped == 4
    assert len(server.received) == 1
    fire(notifier, 1)  # a closed notifier ignores late events
    assert notifier.stats.dropped == 4


def test_an_endpoint_that_refuses_connections_costs_nothing(dead_url: str) -> None:
    notifier = WebhookNotifier(
        Settings(dead_url, timeout=0.2, backoff=0.05, retries=2, flush_timeout=1)
    )
    took = fire(notifier, 50)
    assert took < 0.1, took
    start = time.monotonic()
    notifier.close()
    assert time.monotonic() - start < 1.5
    assert notifier.stats.delivered == 0
    # Every event is accounted for, but the one in flight at the deadline, maybe, not yet.
    assert 49 <= notifier.stats.failed + notifier.stats.dropped <= 50
