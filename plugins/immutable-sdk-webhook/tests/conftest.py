"""A real HTTP endpoint on 127.0.0.1 whose answers (and delays) the test decides."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() on arrival
    headers: dict[str, str]
    body: bytes


class Endpoint:
    """Records every POST; ``answer(n)`` gives (status, delay) for the n-th request (0-based)."""

    def __init__(self, answer: Callable[[int], tuple[int, float]]) -> None:
        self.answer = answer
        self.received: list[Received] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    n = len(outer.received)
                    outer.received.append(Received(time.monotonic(), dict(self.headers), body))
                status, delay = outer.answer(n)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the client gave up (timeout): nothing to answer
                    pass

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/deploy"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Callable[..., Endpoint]]:
    started: list[Endpoint] = []

    def start(answer: Callable[[int], tuple[int, float]] = lambda n: (200, 0.0)) -> Endpoint:
        e = Endpoint(answer)
        started.append(e)
        return e

    yield start
    for e in started:
        e.close()


@pytest.fixture
def dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/deploy"
