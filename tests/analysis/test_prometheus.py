"""The prometheus provider against a real Prometheus server scraping an exporter on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from immutable_sdk.analysis.prometheus import Prometheus as PrometheusProvider
from immutable_sdk.aws.sigv4 import signed_headers
from immutable_sdk.clock import Clock, RealClock, VirtualClock
from immutable_sdk.errors import GateFailed
from immutable_sdk.plugin import AnalysisSlot, MetricQuery
from immutable_sdk.testing.endpoints import LoopbackHTTPServer

from .prometheus_server import Prometheus

KEYS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-example"}


class Context:
    """The part of a plugin context a provider uses."""

    def __init__(self, clock: Clock, credentials: Mapping[str, str] = KEYS) -> None:
        self.clock = clock
        self.region = "us-east-1"
        self._credentials = dict(credentials)

    def credentials(self) -> Mapping[str, str]:
        return self._credentials

    def sign_request(
        self,
        method: str,
        url: str,
        *,
        service: str,
        region: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> dict[str, str]:
        # what the engine's context does (core.context.Context.sign_request)
        return signed_headers(
            self._credentials,
            method,
            url,
            service=service,
            region=region or self.region,
            headers=headers or {},
            body=body,
        )


def slot(name: str, role: str) -> AnalysisSlot:
    return AnalysisSlot(
        role, name, "checkout", f"r-{name}", "us-east-1", f"shop-checkout-{name}", ""
    )


def test_samples_of_each_slot_over_the_window(prometheus: Prometheus) -> None:
    provider = PrometheusProvider({"type": "prometheus", "url": prometheus.url, "window": "3s"})
    metric = {
        "name": "errors",
        "query": 'max(app_error_ratio{slot="{slot}", job="app"})',
        "samples_query": 'sum(app_requests_total{slot="{slot}"})',
        "max_ratio": 2,
    }
    end = time.time()
    queries = [
        MetricQuery(metric, slot(s, r), end - 3, end)
        for s, r in (("green", "canary"), ("blue", "baseline"))
    ]
    canary, baseline = provider.samples(queries, Context(RealClock()))
    assert canary.value == pytest.approx(0.25) and baseline.value == pytest.approx(0.01)
    assert (canary.count, baseline.count) == (1000, 4000)
    assert 3 <= len(canary.points) <= 4 and set(canary.points) == {0.25}  # one a second


def test_without_a_samples_query_the_points_are_the_samples(prometheus: Prometheus) -> None:
    provider = PrometheusProvider(
        {"type": "prometheus", "url": prometheus.url, "window": "3s", "step": "500ms"}
    )
    metric = {"name": "e", "query": 'app_error_ratio{slot="{slot}"}', "aggregate": "max"}
    end = time.time()
    (answer,) = provider.samples(
        [MetricQuery(metric, slot("blue", "canary"), end - 3, end)], Context(RealClock())
    )
    # a point every half second, from the first scrape in the window on
    assert answer.count == len(answer.points) >= 4 and answer.value == pytest.approx(0.01)


def test_a_bad_query_fails_with_prometheus_own_words(prometheus: Prometheus) -> None:
    provider = PrometheusProvider({"type": "prometheus", "url": prometheus.url, "window": "1m"})
    end = time.time()
    bad = MetricQuery(
        {"name": "e", "query": "sum(rate(x[1m]"}, slot("green", "canary"), end - 60, end
    )
    clock = VirtualClock()
    with pytest.raises(GateFailed) as failed:
        provider.samples([bad], Context(clock))
    assert "query_range 'sum(rate(x[1m]' failed: HTTP 400: bad_data:" in str(failed.value)
    assert clock.monotonic() == VirtualClock().monotonic()  # a 400 is not tried again


def test_an_unreachable_server_is_tried_three_times_then_fails() -> None:
    with LoopbackHTTPServer(BaseHTTPRequestHandler) as closed:
        url = f"http://127.0.0.1:{closed.server_address[1]}"
    provider = PrometheusProvider(
        {"type": "prometheus", "url": url, "window": "1m", "timeout": "2s"}
    )
    clock = VirtualClock()
    start = clock.monotonic()
    query = MetricQuery({"name": "e", "query": "up"}, slot("green", "canary"), 0, 60)
    with pytest.raises(GateFailed, match="no answer"):
        provider.samples([query], Context(clock))
    assert clock.monotonic() - start == 2.0  # two waits of a second between three attempts


def test_sigv4_signs_each_request_with_botocore_signer() -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, dict(self.headers)))
            body = b'{"status":"success","data":{"resultType":"matrix","result":[]}}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    with LoopbackHTTPServer(Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.server_address[1]}/workspaces/ws-1"
        creds = {**KEYS, "AWS_SESSION_TOKEN": "token-example"}
        provider = PrometheusProvider(
            {"type": "prometheus", "url": base, "window": "1m", "sigv4": {"region": "eu-west-1"}}
        )
        query = MetricQuery(
            {"name": "e", "query": 'up{slot="{slot}"}'}, slot("green", "canary"), 0, 60
        )
        (answer,) = provider.samples([query], Context(RealClock(), creds))
        server.shutdown()
    assert answer.value is None and answer.count == 0
    (path, headers) = seen[0]
    assert path.startswith("/workspaces/ws-1/api/v1/query_range?query=up%7Bslot%3D%22green%22%7D")
    auth = headers["Authorization"]
    day = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
    assert auth.startswith(
        f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{day}/eu-west-1/aps/aws4_request"
    )
    assert headers["X-Amz-Security-Token"] == "token-example"
    # The signature is what botocore computes for the request the server received.
    signer = SigV4Auth(
        Credentials("AKIDEXAMPLE", "secret-example", "token-example"), "aps", "eu-west-1"
    )
    request = AWSRequest(
        method="GET",
        url=f"http://127.0.0.1:{headers['Host'].split(':')[1]}{path}",
        headers={k: v for k, v in headers.items() if k.lower().startswith("x-amz-")}
        | {"Accept": headers["Accept"]},
    )
    request.context["timestamp"] = headers["X-Amz-Date"]
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    assert auth.endswith(f"Signature={expected}")


def test_the_prometheus_schema_takes_its_keys(tmp_path: Path) -> None:
    from immutable_sdk.plugins import load_plugins

    entry = load_plugins(autoload=False).analysis_providers.get("prometheus")
    metric = entry.schema["properties"]["metrics"]["items"]["properties"]
    assert {"query", "samples_query", "aggregate", "dry_run", "compare", "max_ratio"} <= set(metric)
