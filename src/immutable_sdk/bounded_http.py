"""One HTTP request bounded by one total deadline: connect, send, and a capped read of the answer.

A socket timeout bounds each read, not the exchange: a server that dribbles a byte every few
seconds keeps an ordinary request (urllib, http.client) alive for as long as it likes. Here
every socket operation (connect, TLS handshake, each send and each receive) gets the time left
until one deadline, so the whole exchange, from the connection to the last byte read, ends by
it or raises ``TimeoutError``. At most ``max_body`` bytes of the body are read.

Redirects are never followed: the 3xx is the answer, and the caller decides (an HTTP client
that follows redirects on its own forwards headers, signatures included, to wherever the server
points). A proxy is used only when the caller passes one; ``proxy_from_environment`` finds the
one ``HTTPS_PROXY`` / ``HTTP_PROXY`` name for a URL, honouring ``NO_PROXY``.

Name resolution is not cut short: it is bounded by the system resolver's own timeouts.
"""

from __future__ import annotations

import base64
import http.client
import io
import socket
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

MAX_BODY = 64 * 1024  # default cap on the bytes of a body read


@dataclass(frozen=True)
class HttpAnswer:
    """What the server answered: status, headers (names lower-cased) and the body's start."""

    status: int
    reason: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def location(self) -> str | None:
        return self.headers.get("location")


def http_request(
    method: str,
    url: str,
    *,
    deadline: float,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    max_body: int = MAX_BODY,
    proxy: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> HttpAnswer:
    """Send one request and read its answer, all within ``deadline`` seconds from now.

    ``proxy`` is an ``http://[user:pass@]host:port`` URL (HTTPS goes through it by CONNECT).
    User info in ``url`` or ``proxy`` becomes Basic authentication. Raises ``TimeoutError``
    when the deadline passes, another ``OSError`` when there is no answer (refused, reset),
    ``http.client.HTTPException`` for a broken answer and ``ValueError`` for a bad URL.
    """
    end = time.monotonic() + deadline
    target = urllib.parse.urlsplit(url)
    if target.scheme not in ("http", "https") or not target.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    port = target.port or (443 if target.scheme == "https" else 80)
    hostport = _hostport(target)
    sent: dict[str, str] = {"Host": hostport, "Connection": "close"}
    sent.update(headers or {})
    if target.username is not None:
        sent["Authorization"] = _basic(target)
    path = urllib.parse.urlunsplit(("", "", target.path or "/", target.query, ""))

    auth: dict[str, str] = {}
    if proxy is None:
        sock = _DeadlineSocket(_connect(target.hostname, port, end), end)
    else:
        via = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if via.scheme != "http" or not via.hostname:
            raise ValueError("expected the proxy as an http://host:port URL")
        if via.username is not None:
            auth["Proxy-Authorization"] = _basic(via)
        sock = _DeadlineSocket(_connect(via.hostname, via.port or 80, end), end)
    try:
        if proxy is not None and target.scheme == "https":
            host = f"[{target.hostname}]" if ":" in target.hostname else target.hostname
            _tunnel(sock, f"{host}:{port}", auth)
        elif proxy is not None:  # plain HTTP through a proxy: the request names the whole URL
            path = urllib.parse.urlunsplit(("http", hostport, target.path or "/", target.query, ""))
            sent.update(auth)
        if target.scheme == "https":
            sock = sock.start_tls(tls or ssl.create_default_context(), target.hostname)
        conn = http.client.HTTPConnection(target.hostname, port)
        conn.sock = cast(Any, sock)
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read(max_body) if max_body > 0 else b""
        return HttpAnswer(
            response.status,
            response.reason,
            {k.lower(): v for k, v in response.getheaders()},
            data,
        )
    finally:
        sock.shut()


def proxy_from_environment(url: str) -> str | None:
    """The proxy that ``HTTPS_PROXY`` / ``HTTP_PROXY`` name for ``url``, unless ``NO_PROXY``
    (or the platform's settings) exempt its host; None for a direct connection."""
    target = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(target.scheme)
    if not proxy or not target.hostname:
        return None
    if urllib.request.proxy_bypass(_hostport(target)):
        return None
    return proxy


def _hostport(target: urllib.parse.SplitResult) -> str:
    return target.netloc.rpartition("@")[2]


def _basic(parts: urllib.parse.SplitResult) -> str:
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _left(end: float) -> float:
    left = end - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline exceeded")
    return left


def _connect(host: str, port: int, end: float) -> socket.socket:
    error: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_left(end))
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
            if isinstance(exc, TimeoutError):
                break
    raise error or OSError(f"no address for {host}")


def _tunnel(sock: _DeadlineSocket, authority: str, headers: Mapping[str, str]) -> None:
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    response = http.client.HTTPResponse(cast(Any, sock), method="CONNECT")
    response.begin()
    if response.status != 200:
        raise OSError(f"the proxy refused the tunnel: {response.status} {response.reason}")


class _DeadlineSocket:
    """A socket whose every operation gets only the time left until ``end``."""

    def __init__(self, sock: socket.socket, end: float) -> None:
        self.sock = sock
        self.end = end

    def start_tls(self, context: ssl.SSLContext, host: str) -> _DeadlineSocket:
        self.sock.settimeout(_left(self.end))  # the handshake's timeout covers all of it
        return _DeadlineSocket(context.wrap_socket(self.sock, server_hostname=host), self.end)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self.sock.settimeout(_left(self.end))
            view = view[self.sock.send(view) :]

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        self.sock.settimeout(_left(self.end))
        return self.sock.recv_into(buffer, nbytes)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_Reader(self))

    def close(self) -> None:
        """http.client closes the connection before the body is read: the caller closes."""

    def shut(self) -> None:
        self.sock.close()


class _Reader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)
