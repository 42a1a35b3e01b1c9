"""Real HTTP endpoints and a forward proxy on 127.0.0.1 whose answers (and delays) tests decide."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their proxies: none from the environment the suite runs in."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() on arrival
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    """How to answer one request: ``dribble`` sends the whole answer (``head``) or the body
    (``body``) a byte every that many seconds."""

    status: int = 200
    delay: float = 0.0
    location: str | None = None
    dribble: float = 0.0
    dribbled: str = "body"  # or "head"


Answer = Callable[[int], "tuple[int, float] | Reply"]


class Endpoint:
    """Records every POST; ``answer(n)`` decides the reply to the n-th request (0-based)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.received: list[Received] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    n = len(outer.received)
                    outer.received.append(
                        Received(time.monotonic(), self.path, dict(self.headers), body)
                    )
                reply = outer.answer(n)
                if isinstance(reply, tuple):
                    reply = Reply(*reply)
                with contextlib.suppress(OSError):  # the client gave up (its deadline)
                    self.reply(reply)

            def reply(self, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                body = b"x" * 1000 if reply.dribble else b""
                head = f"HTTP/1.1 {reply.status} Whatever\r\nContent-Length: {len(body)}\r\n"
                if reply.location:
                    head += f"Location: {reply.location}\r\n"
                data = (head + "\r\n").encode()
                if reply.dribble and reply.dribbled == "head":
                    self.trickle(data + body, reply.dribble)
                    return
                self.wfile.write(data)
                self.wfile.flush()
                self.trickle(body, reply.dribble)

            def trickle(self, data: bytes, every: float) -> None:
                for byte in data:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(every)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.base}/hooks/deploy"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Callable[..., Endpoint]]:
    started: list[Endpoint] = []

    def start(answer: Answer = lambda n: (200, 0.0)) -> Endpoint:
        e = Endpoint(answer)
        started.append(e)
        return e

    yield start
    for e in started:
        e.close()


@pytest.fixture
def dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/deploy"


class Proxy:
    """A forward proxy on 127.0.0.1 for plain HTTP: records each request, then forwards it."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                from immutable_sdk.plugin import http_request

                outer.seen.append(f"POST {self.path}")
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                got = http_request("POST", self.path, deadline=5, body=body, headers=headers)
                self.send_response(got.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy()
    yield p
    p.close()
