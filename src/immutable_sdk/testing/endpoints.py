"""A real HTTP server on 127.0.0.1 whose answers the test decides: what ``http`` health
checks (and plugin authors' checks) are tested against, never a mock."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server on 127.0.0.1 (port chosen by the system) for tests.

    A client that hangs up mid-answer (a probe at its deadline, a scraper at its timeout) is
    expected here, not an error: the standard server prints its traceback to ``sys.stderr``,
    from a thread, into whatever output a later test is capturing. Other errors still print.
    """

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class HealthServer:
    """Answers ``decide(last path segment)`` when given (an instance id in the URL, say),
    else ``status``; ``requests`` lists each request's last path segment, in order."""

    def __init__(self, decide: Callable[[str], int] | None = None, status: int = 200) -> None:
        self.decide = decide
        self.status = status
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                segment = self.path.rsplit("/", 1)[-1]
                outer.requests.append(segment)
                code = outer.decide(segment) if outer.decide else outer.status
                body = b"ok" if code == 200 else b"broken"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = LoopbackHTTPServer(Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HealthServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
