"""A real Prometheus server (Debian's ``prometheus`` binary) scraping an exporter the test controls.

Both listen on 127.0.0.1 only. Prometheus scrapes every second into a temporary storage
folder; ``wait_for_points`` bounds the real time a test waits for data. Outside CI a machine
without the binary skips these tests with the reason; in CI (``CI`` set) it fails: CI installs
the binary (``scripts/bootstrap``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from immutable_sdk.testing.endpoints import LoopbackHTTPServer

SCRAPE = "1s"


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("the prometheus binary is missing: scripts/bootstrap installs it in CI")
    pytest.skip("the prometheus binary is missing (apt-get install -y prometheus)")


class Exporter:
    """``/metrics`` in the text format, from ``self.lines`` (the test changes them at will)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with exporter.lock:
                    body = ("\n".join(exporter.lines) + "\n").encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = LoopbackHTTPServer(Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def set(self, lines: list[str]) -> None:
        with self.lock:
            self.lines = list(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str) -> list[Any]:
        params = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{params}", timeout=5) as answer:
            return list(json.load(answer)["data"]["result"])

    def wait_for_points(self, promql: str, count: int, timeout: float = 30.0) -> None:
        """Until ``count_over_time(promql[1m])`` reaches ``count`` for every series (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.query(f"min(count_over_time(({promql})[1m:1s]))")
            if found and float(found[0]["value"][1]) >= count:
                return
            assert time.monotonic() < deadline, f"no {count} points of {promql} in {timeout}s"
            time.sleep(0.2)


@contextmanager
def prometheus_scraping(exporter: Exporter, tmp: Path) -> Iterator[Prometheus]:
    binary = prometheus_binary()
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        f"global: {{scrape_interval: {SCRAPE}, evaluation_interval: {SCRAPE}}}\n"
        "scrape_configs:\n"
        f"  - job_name: app\n    static_configs: [{{targets: ['127.0.0.1:{exporter.port}']}}]\n"
    )
    exporter.thread.start()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "prometheus did not become ready in 30s"
            time.sleep(0.1)
        yield Prometheus(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        exporter.server.shutdown()
        exporter.server.server_close()


def slot_metrics(error_ratio: Mapping[str, float], requests: Mapping[str, int]) -> list[str]:
    """An application's metrics, labelled by slot."""
    lines = ["# TYPE app_error_ratio gauge"]
    lines += [f'app_error_ratio{{slot="{s}"}} {v}' for s, v in error_ratio.items()]
    lines.append("# TYPE app_requests_total counter")
    lines += [f'app_requests_total{{slot="{s}"}} {n}' for s, n in requests.items()]
    return lines
