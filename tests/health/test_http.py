"""The ``http`` health check against real HTTP servers on 127.0.0.1 that the tests control."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from immutable_sdk.core.context import Context
from immutable_sdk.errors import PluginError
from immutable_sdk.health.http import factory
from immutable_sdk.plugin import GateTargets, HealthStatus, Target
from immutable_sdk.testing.endpoints import LoopbackHTTPServer


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0
    location: str | None = None


@dataclass
class Server:
    """An HTTP server whose answers the test sets per path (default: ``default``)."""

    default: Answer = field(default_factory=Answer)
    by_path: dict[str, Answer] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    httpd: LoopbackHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.httpd is not None
        return int(self.httpd.server_address[1])

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


def _start(server: Server) -> Server:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with server.lock:
                server.requests.append(self.path)
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                answer = server.by_path.get(self.path, server.default)
                if answer.delay:
                    time.sleep(answer.delay)
                self.send_response(answer.status)
                if answer.location:
                    self.send_header("Location", answer.location)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the check gave up waiting (its timeout): expected in those tests
            finally:
                with server.lock:
                    server.in_flight -= 1

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = LoopbackHTTPServer(Handler)
    server.httpd = httpd
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return server


@pytest.fixture
def server() -> Iterator[Server]:
    s = _start(Server())
    yield s
    s.stop()


@pytest.fixture
def other_server() -> Iterator[Server]:
    s = _start(Server())
    yield s
    s.stop()


def targets(*ids: str, public_ip: str | None = None) -> GateTargets:
    return GateTargets(
        fleet="web",
        release="r1",
        instances=[Target(instance_id=i, private_ip="127.0.0.1", public_ip=public_ip) for i in ids],
    )


def url(server: Server, path: str = "/healthz") -> str:
    return f"http://{{private_ip}}:{server.port}{path}"


def test_consecutive_successes_make_every_instance_pass(ctx: Context, server: Server) -> None:
    check = factory({"type": "http", "url": url(server), "successes": 2})
    first = check.check(targets("i-1", "i-2", "i-3"), ctx)
    assert first.status is HealthStatus.PENDING
    expected_url = f"http://127.0.0.1:{server.port}/healthz"
    assert first.details["i-1"] == f"GET {expected_url}: 200 (1/2)"
    second = check.check(targets("i-1", "i-2", "i-3"), ctx)
    assert second.status is HealthStatus.HEALTHY
    assert second.summary == "3/3 instances passed"
    assert server.requests == ["/healthz"] * 6
    assert ctx.session.calls.total == 0


def test_placeholders_fill_per_instance(ctx: Context, server: Server) -> None:
    check = factory({"type": "http", "url": url(server, "/i/{instance_id}"), "successes": 1})
    report = check.check(targets("i-1", "i-2"), ctx)
    assert report.status is HealthStatus.HEALTHY
    assert sorted(server.requests) == ["/i/i-1", "/i/i-2"]


def test_a_wrong_status_fails_after_the_failure_threshold(ctx: Context, server: Server) -> None:
    server.by_path["/i/i-2"] = Answer(status=500, body=b"boom")
    check = factory({"type": "http", "url": url(server, "/i/{instance_id}"), "failures": 3})
    t = targets("i-1", "i-2")
    for n in (1, 2):
        report = check.check(t, ctx)
        assert report.status is HealthStatus.PENDING
        assert report.details["i-2"].endswith(f"status 500, expected 200 ({n}/3 failures)")
    report = check.check(t, ctx)
    assert report.status is HealthStatus.UNHEALTHY
    assert report.summary.startswith("1/2 instances failed (i-2: GET http://127.0.0.1:")
    assert report.summary.endswith("/i/i-2: status 500, expected 200 (3/3 failures))")
    assert report.details["i-1"].endswith(": 200 (2/2)")


def test_expect_status_accepts_a_list(ctx: Context, server: Server) -> None:
    server.default = Answer(status=204, body=b"")
    check = factory(
        {"type": "http", "url": url(server), "expect_status": [200, 204], "successes": 1}
    )
    assert check.check(targets("i-1"), ctx).status is HealthStatus.HEALTHY
    strict = factory({"type": "http", "url": url(server), "expect_status": 200, "failures": 1})
    report = strict.check(targets("i-1"), ctx)
    assert report.status is HealthStatus.UNHEALTHY
    assert "status 204, expected 200" in report.details["i-1"]


def test_a_body_that_does_not_match_is_a_failure(ctx: Context, server: Server) -> None:
    server.default = Answer(body=b'{"status": "degraded"}')
    check = factory(
        {"type": "http", "url": url(server), "body_regex": '"status": "ok"', "failures": 2}
    )
    assert check.check(targets("i-1"), ctx).status is HealthStatus.PENDING
    report = check.check(targets("i-1"), ctx)
    assert report.status is HealthStatus.UNHEALTHY
    assert report.details["i-1"].endswith('body does not match /"status": "ok"/ (2/2 failures)')
    server.default = Answer(body=b'{"status": "ok"}')
    assert check.check(targets("i-1"), ctx).details["i-1"].endswith(": 200 (1/2)")


def test_a_slow_answer_beyond_the_timeout_is_a_failure(ctx: Context, server: Server) -> None:
    check = factory(
        {
            "type": "http",
            "url": url(server),
            "request_timeout": "200ms",
            "successes": 1,
            "failures": 2,
        }
    )
    assert check.check(targets("i-1"), ctx).status is HealthStatus.HEALTHY
    server.default = Answer(delay=1.0)
    started = time.monotonic()
    first = check.check(targets("i-1"), ctx)
    assert time.monotonic() - started < 0.9
    assert first.status is HealthStatus.PENDING
    assert "timed out" in first.details["i-1"]
    assert check.check(targets("i-1"), ctx).status is HealthStatus.UNHEALTHY


def test_connection_refused_after_shutdown_is_a_failure(ctx: Context, server: Server) -> None:
    check = factory({"type": "http", "url": url(server), "successes": 1, "failures": 2})
    assert check.check(targets("i-1"), ctx).status is HealthStatus.HEALTHY
    server.stop()
    first = check.check(targets("i-1"), ctx)
    assert first.status is HealthStatus.PENDING
    assert "Connection refused" in first.details["i-1"]
    assert first.details["i-1"].endswith("(1/2 failures)")
    assert check.check(targets("i-1"), ctx).status is HealthStatus.UNHEALTHY


def test_an_instance_that_never_answered_is_still_starting(ctx: Context, server: Server) -> None:
    # Like a load balancer's `initial` state: no answer before the first one is not a failure;
    # the gate's timeout bounds the wait.
    template = url(server)
    server.stop()
    check = factory({"type": "http", "url": template, "failures": 1})
    for _ in range(5):
        report = check.check(targets("i-1"), ctx)
        assert report.status is HealthStatus.PENDING
        assert report.details["i-1"].startswith("not answering yet: ")


def test_requests_of_a_poll_run_concurrently(ctx: Context, server: Server) -> None:
    server.default = Answer(delay=0.3)
    check = factory({"type": "http", "url": url(server), "successes": 1})
    started = time.monotonic()
    report = check.check(targets(*(f"i-{n}" for n in range(8))), ctx)
    elapsed = time.monotonic() - started
    assert report.status is HealthStatus.HEALTHY
    assert server.max_in_flight > 1
    assert elapsed < 8 * 0.3


def test_redirects_to_another_host_are_not_followed(
    ctx: Context, server: Server, other_server: Server
) -> None:
    server.by_path["/away"] = Answer(status=302, location=f"http://127.0.0.1:{other_server.port}/")
    server.by_path["/here"] = Answer(status=302, location="/healthz")
    away = factory({"type": "http", "url": url(server, "/away"), "failures": 1})
    report = away.check(targets("i-1"), ctx)
    assert report.status is HealthStatus.UNHEALTHY
    assert "status 302, expected 200" in report.details["i-1"]
    assert other_server.requests == []
    here = factory({"type": "http", "url": url(server, "/here"), "successes": 1})
    assert here.check(targets("i-1"), ctx).status is HealthStatus.HEALTHY
    assert server.requests[-2:] == ["/here", "/healthz"]


def test_proxies_from_the_environment_are_ignored(
    ctx: Context, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    check = factory({"type": "http", "url": url(server), "successes": 1})
    assert check.check(targets("i-1"), ctx).status is HealthStatus.HEALTHY


def test_a_missing_address_counts_as_a_failure(ctx: Context, server: Server) -> None:
    check = factory({"type": "http", "url": f"http://{{public_ip}}:{server.port}/", "failures": 1})
    report = check.check(targets("i-1"), ctx)
    assert report.status is HealthStatus.UNHEALTHY
    assert report.details["i-1"] == "no public_ip to fill the URL template (1/1 failures)"
    with_ip = targets("i-1", public_ip="127.0.0.1")
    assert (
        factory({"type": "http", "url": f"http://{{public_ip}}:{server.port}/"})
        .check(with_ip, ctx)
        .details["i-1"]
        .endswith(": 200 (1/2)")
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "http://{private_ip}:80/{host}"}, "unknown placeholder {host}"),
        ({"url": "http://{private_ip:80/"}, "url 'http://{private_ip:80/'"),
        ({"url": "http://{private_ip}/", "body_regex": "("}, "body_regex '('"),
    ],
)
def test_configuration_errors_are_plugin_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(PluginError, match="plugin 'http'") as info:
        factory({"type": "http", **config})
    assert message in str(info.value)
