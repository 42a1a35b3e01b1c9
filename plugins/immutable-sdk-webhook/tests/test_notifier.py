"""The notifier on its own against real endpoints on 127.0.0.1: order, signatures, retries,
losses counted and reported, deadlines, redirects, proxies, and a URL that is never logged."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest
from conftest import Proxy, Reply
from immutable_sdk_webhook.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from immutable_sdk_webhook.notifier import Settings, WebhookNotifier
from immutable_sdk_webhook.plugin import settings

from immutable_sdk.plugin import Gate, PluginError, RolloutInfo

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
        notifier.immutable_sdk_step_finished(
            event_id="r-1/1/x", rollout=INFO, step=Gate(), outcome="ok"
        )
    return time.monotonic() - start


def accounted(notifier: WebhookNotifier) -> None:
    """Every event handed to the notifier is either delivered or counted as lost."""
    stats = notifier.stats
    assert stats.delivered + stats.lost_total == stats.events, stats


def test_events_arrive_in_order_signed_with_a_timestamp_and_whole(endpoint: Any) -> None:
    server = endpoint()
    notifier = WebhookNotifier(Settings(server.url, secret=b"s3cret"))
    notifier.immutable_sdk_rollout_started(event_id="r-1/2/x", rollout=INFO)
    notifier.immutable_sdk_step_started(event_id="r-1/3/x", rollout=INFO, step=Gate(slot="blue"))
    notifier.immutable_sdk_traffic_shifted(
        event_id="r-1/9/x",
        rollout=INFO,
        before={"blue": 100, "green": 0},
        after={"blue": 90, "green": 10},
    )
    notifier.immutable_sdk_rollback_started(event_id="r-1/4/x", rollout=INFO, reason="gate failed")
    notifier.immutable_sdk_rollout_finished(event_id="r-1/5/x", rollout=INFO, outcome="rolled_back")
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
    ids = ["r-1/2/x", "r-1/3/x", "r-1/9/x", "r-1/4/x", "r-1/5/x"]
    assert [b["event_id"] for b in bodies] == ids
    assert [r.headers["Idempotency-Key"] for r in server.received] == ids
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
        signature, stamp = r.headers[SIGNATURE_HEADER], r.headers[TIMESTAMP_HEADER]
        assert abs(int(stamp) - time.time()) < 60
        assert verify(b"s3cret", r.body, signature, stamp)
        assert verify("s3cret", r.body.decode(), signature, stamp)  # str or bytes alike
        assert not verify(b"other", r.body, signature, stamp)
        assert not verify(b"s3cret", r.body + b" ", signature, stamp)
        assert not verify(b"s3cret", r.body, signature, str(int(stamp) + 1))  # re-dated
        assert not verify(b"s3cret", r.body, signature, None)
    assert (notifier.stats.delivered, notifier.stats.lost_total) == (5, 0)


def test_a_replayed_request_is_rejected_once_its_timestamp_is_old(endpoint: Any) -> None:
    server = endpoint()
    notifier = WebhookNotifier(Settings(server.url, secret=b"s3cret"))
    notifier.immutable_sdk_rollout_started(event_id="r-1/6/x", rollout=INFO)
    notifier.close()
    (got,) = server.received
    signature, stamp = got.headers[SIGNATURE_HEADER], got.headers[TIMESTAMP_HEADER]
    sent = int(stamp)
    assert verify(b"s3cret", got.body, signature, stamp, now=sent + 299)
    assert not verify(b"s3cret", got.body, signature, stamp, now=sent + 301)
    assert not verify(b"s3cret", got.body, signature, stamp, now=sent + 61, tolerance=60)
    assert not verify(b"s3cret", got.body, signature, "yesterday")


def test_without_a_secret_there_is_no_signature(endpoint: Any) -> None:
    server = endpoint()
    notifier = WebhookNotifier(Settings(server.url))
    notifier.immutable_sdk_rollout_started(event_id="r-1/7/x", rollout=INFO)
    notifier.close()
    assert len(server.received) == 1
    assert SIGNATURE_HEADER not in server.received[0].headers
    assert TIMESTAMP_HEADER not in server.received[0].headers


def test_a_server_error_is_retried_with_doubling_backoff_and_signed_afresh(
    endpoint: Any,
) -> None:
    server = endpoint(lambda n: (500, 0.0) if n < 3 else (200, 0.0))
    notifier = WebhookNotifier(Settings(server.url, secret=b"k", backoff=0.1, retries=3))
    notifier.immutable_sdk_rollout_started(event_id="r-1/8/x", rollout=INFO)
    notifier.immutable_sdk_rollout_finished(event_id="r-1/9/x", rollout=INFO, outcome="promoted")
    notifier.close()
    got = server.received
    assert len(got) == 5
    assert got[0].body == got[1].body == got[2].body == got[3].body != got[4].body
    gaps = [b.at - a.at for a, b in itertools.pairwise(got[:4])]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4, gaps
    assert gaps[2] < 2.0, gaps
    assert all(
        verify(b"k", r.body, r.headers[SIGNATURE_HEADER], r.headers[TIMESTAMP_HEADER]) for r in got
    )
    assert (notifier.stats.delivered, notifier.stats.attempts) == (2, 5)


def test_a_refusal_is_not_retried_and_the_next_event_goes_on(endpoint: Any) -> None:
    server = endpoint(lambda n: (404, 0.0) if n == 0 else (200, 0.0))
    notifier = WebhookNotifier(Settings(server.url, backoff=0.01))
    notifier.immutable_sdk_rollout_started(event_id="r-1/10/x", rollout=INFO)
    notifier.immutable_sdk_rollout_finished(event_id="r-1/11/x", rollout=INFO, outcome="promoted")
    notifier.close()
    assert [json.loads(r.body)["event"] for r in server.received] == [
        "rollout_started",
        "rollout_finished",
    ]
    assert notifier.stats.lost == {"refused": 1} and notifier.stats.delivered == 1
    accounted(notifier)


def test_a_full_queue_drops_the_oldest_and_counts_without_blocking(endpoint: Any) -> None:
    server = endpoint(lambda n: (200, 0.3))
    notifier = WebhookNotifier(Settings(server.url, queue_size=2, flush_timeout=5))
    took = fire(notifier, 19)
    notifier.immutable_sdk_rollout_finished(event_id="r-1/12/x", rollout=INFO, outcome="promoted")
    assert took < 0.1, took
    notifier.close()
    stats = notifier.stats
    accounted(notifier)
    assert stats.events == 20 and stats.delivered == len(server.received)
    assert 2 <= stats.delivered <= 3 and stats.lost == {"queue_full": 20 - stats.delivered}
    # The newest events are the ones kept: the outcome arrives, with its sequence number.
    last = json.loads(server.received[-1].body)
    assert (last["event"], last["sequence"]) == ("rollout_finished", 19)


def test_closing_waits_at_most_the_flush_timeout_and_counts_what_it_abandons(
    endpoint: Any,
) -> None:
    server = endpoint(lambda n: (200, 3.0))
    notifier = WebhookNotifier(Settings(server.url, timeout=5, flush_timeout=0.5))
    fire(notifier, 5)
    waited = time.monotonic()  # the first event in flight before closing
    while not server.received and time.monotonic() - waited < 5:
        time.sleep(0.01)
    assert len(server.received) == 1
    start = time.monotonic()
    notifier.close()
    assert time.monotonic() - start < 1.0
    # The four still queued and the one in flight: all five counted, none forgotten.
    assert notifier.stats.delivered == 0 and notifier.stats.lost == {"shutdown": 5}
    time.sleep(3.0)  # the answer to the abandoned one comes now: it is not counted twice
    fire(notifier, 1)  # a closed notifier counts late events as lost too
    assert notifier.stats.lost == {"shutdown": 6}
    accounted(notifier)


def test_a_receiver_that_is_down_loses_every_event_counted_and_reported(
    dead_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    notifier = WebhookNotifier(
        Settings(dead_url, timeout=0.5, backoff=0.05, retries=2, flush_timeout=2)
    )
    took = fire(notifier, 40)
    notifier.immutable_sdk_rollout_finished(event_id="r-1/13/x", rollout=INFO, outcome="promoted")
    assert took < 0.1, took
    start = time.monotonic()
    notifier.close()
    assert time.monotonic() - start < 2.5
    stats = notifier.stats
    assert stats.events == 41 and stats.delivered == 0 and stats.lost_total == 41
    assert stats.lost["unreachable"] >= 1
    # After the first event is given up on, the others get one attempt each.
    assert stats.attempts <= 3 + 40, stats.attempts
    err = capsys.readouterr().err
    assert "webhook.event_lost" in err and "reason=unreachable" in err
    assert "webhook.events_lost" in err and "lost=41" in err and "events=41" in err


def test_an_endpoint_that_dribbles_its_answer_is_cut_off_at_the_deadline(
    endpoint: Any,
) -> None:
    server = endpoint(lambda n: Reply(dribble=0.2, dribbled="head"))
    notifier = WebhookNotifier(
        Settings(server.url, timeout=0.6, retries=1, backoff=0.05, flush_timeout=5)
    )
    fire(notifier, 2)
    start = time.monotonic()
    notifier.close()
    took = time.monotonic() - start
    # Two attempts for the first event, one for the second (the endpoint is failing): each
    # cut at 0.6 s although a byte arrives every 0.2 s.
    assert len(server.received) == 3
    assert took < 3 * 0.6 + 1.0, took
    gaps = [b.at - a.at for a, b in itertools.pairwise(server.received)]
    assert all(0.5 <= g < 1.2 for g in gaps), gaps
    assert notifier.stats.lost == {"unreachable": 2}
    accounted(notifier)


def test_a_slow_body_after_a_2xx_status_still_delivers_every_event(endpoint: Any) -> None:
    server = endpoint(lambda n: Reply(dribble=0.5))  # status at once, then a byte each 0.5 s
    notifier = WebhookNotifier(Settings(server.url, timeout=1, flush_timeout=5))
    fire(notifier, 8)
    start = time.monotonic()
    notifier.close()
    assert time.monotonic() - start < 2.0
    assert notifier.stats.delivered == 8 and notifier.stats.lost_total == 0


def test_a_redirect_to_another_host_is_not_followed_and_gets_no_signature(
    endpoint: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = endpoint()
    server = endpoint(lambda n: Reply(307, location=f"{elsewhere.base}/stolen/path"))
    notifier = WebhookNotifier(Settings(server.url, secret=b"s3cret", backoff=0.01))
    notifier.immutable_sdk_rollout_started(event_id="r-1/14/x", rollout=INFO)
    notifier.close()
    assert len(server.received) == 1  # not retried either
    assert elsewhere.received == []
    assert notifier.stats.lost == {"redirected": 1}
    err = capsys.readouterr().err
    assert "reason=redirected" in err and elsewhere.base in err
    assert "/stolen/path" not in err


def test_proxies_from_the_environment_carry_the_requests(
    endpoint: Any, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = endpoint()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("HOOK_SECRET", "hunter2")
    notifier = WebhookNotifier(
        settings({"type": "webhook", "url": server.url, "secret_env": "HOOK_SECRET"})
    )
    notifier.immutable_sdk_rollout_started(event_id="r-1/15/x", rollout=INFO)
    notifier.close()
    assert proxy.seen == [f"POST {server.url}"]
    (got,) = server.received
    assert verify("hunter2", got.body, got.headers[SIGNATURE_HEADER], got.headers[TIMESTAMP_HEADER])


def test_no_proxy_exempts_the_host(
    endpoint: Any, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = endpoint()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    notifier = WebhookNotifier(settings({"type": "webhook", "url": server.url}))
    notifier.immutable_sdk_rollout_started(event_id="r-1/16/x", rollout=INFO)
    notifier.close()
    assert proxy.seen == [] and len(server.received) == 1


SLACK_PATH = "/services/T0000/B0000/XXXXsecretXXXXtoken"


@pytest.mark.parametrize("answer", ["down", "refusing", "ok"])
def test_the_url_is_never_logged_only_its_scheme_and_host(
    endpoint: Any, dead_url: str, capsys: pytest.CaptureFixture[str], answer: str
) -> None:
    if answer == "down":
        base = dead_url.rsplit("/hooks", 1)[0]
    else:
        base = endpoint(lambda n: (403 if answer == "refusing" else 200, 0.0)).base
    url = f"http://user:pa55word@{base.removeprefix('http://')}{SLACK_PATH}?token=qs-secret"
    notifier = WebhookNotifier(Settings(url, timeout=0.5, retries=0, flush_timeout=2))
    assert "secret" not in repr(notifier.settings) and "pa55word" not in repr(notifier.settings)
    fire(notifier, 3)
    notifier.close()
    err = capsys.readouterr().err
    assert "webhook.events_" in err and f"target={base}" in err
    for secret in ("XXXXsecretXXXXtoken", "/services", "qs-secret", "pa55word", "user:"):
        assert secret not in err
    accounted(notifier)


def test_the_url_can_come_from_the_environment() -> None:
    environ = {"HOOK_URL": "https://hooks.example.com" + SLACK_PATH}
    got = settings({"type": "webhook", "url_env": "HOOK_URL"}, environ)
    assert got.url == environ["HOOK_URL"] and got.target == "https://hooks.example.com"
    with pytest.raises(PluginError, match="url_env names NOPE, which is not set"):
        settings({"type": "webhook", "url_env": "NOPE"}, environ)
    with pytest.raises(PluginError, match="holds no http") as info:
        settings({"type": "webhook", "url_env": "BAD"}, {"BAD": "ftp://x/secret-path"})
    assert "secret-path" not in str(info.value)
    with pytest.raises(PluginError, match="exactly one of url and url_env"):
        settings({"type": "webhook", "url": "http://x/", "url_env": "HOOK_URL"}, environ)
