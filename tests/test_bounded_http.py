"""``http_request`` against real servers on 127.0.0.1: one total deadline, a capped body, no
redirects followed, proxies (plain and CONNECT) only when asked for, NO_PROXY honoured."""

from __future__ import annotations

import datetime
import ipaddress
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from immutable_sdk.plugin import http_request, proxy_from_environment
from immutable_sdk.testing.endpoints import LoopbackHTTPServer

Handle = Callable[[BaseHTTPRequestHandler], None]


def serve(handle: Handle, tls: ssl.SSLContext | None = None) -> LoopbackHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            handle(self)

        def do_POST(self) -> None:
            handle(self)

        def log_message(self, *args: Any) -> None:
            return None

    httpd = LoopbackHTTPServer(Handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return httpd


@pytest.fixture
def servers() -> Iterator[Callable[..., LoopbackHTTPServer]]:
    started: list[LoopbackHTTPServer] = []

    def start(handle: Handle, tls: ssl.SSLContext | None = None) -> LoopbackHTTPServer:
        httpd = serve(handle, tls)
        started.append(httpd)
        return httpd

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


def url(httpd: LoopbackHTTPServer, path: str = "/x", scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{httpd.server_address[1]}{path}"


def answer(body: bytes, status: int = 200, **headers: str) -> Handle:
    def handle(h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            h.rfile.read(length)
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k.replace("_", "-"), v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handle


def test_a_dribbled_answer_is_cut_off_at_the_total_deadline(servers: Any) -> None:
    def dribble(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        try:
            for _ in range(1000):
                h.wfile.write(b"x")
                h.wfile.flush()
                time.sleep(0.1)  # each read gets a byte well within any per-read timeout
        except OSError:
            pass

    httpd = servers(dribble)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        http_request("GET", url(httpd), deadline=0.8)
    assert 0.7 <= time.monotonic() - start < 1.3


def test_a_dribbled_status_line_is_cut_off_too(servers: Any) -> None:
    def dribble(h: BaseHTTPRequestHandler) -> None:
        try:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    httpd = servers(dribble)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        http_request("GET", url(httpd), deadline=0.6)
    assert time.monotonic() - start < 1.1


def test_the_body_read_is_capped(servers: Any) -> None:
    httpd = servers(answer(b"a" * 100_000))
    got = http_request("GET", url(httpd), deadline=5, max_body=1000)
    assert (got.status, len(got.body)) == (200, 1000)


def test_a_refused_connection_is_an_oserror() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        http_request("GET", f"http://127.0.0.1:{port}/", deadline=2)


def test_redirects_are_answers_not_followed(servers: Any) -> None:
    seen: list[str] = []

    def other(h: BaseHTTPRequestHandler) -> None:
        seen.append(h.path)
        answer(b"")(h)

    target = servers(other)
    httpd = servers(answer(b"", 307, Location=url(target, "/stolen")))
    got = http_request("POST", url(httpd), deadline=2, body=b"{}", headers={"X-Sig": "s"})
    assert (got.status, got.location) == (307, url(target, "/stolen"))
    assert seen == []


def test_user_info_becomes_basic_auth_and_headers_are_sent(servers: Any) -> None:
    got: dict[str, str] = {}

    def record(h: BaseHTTPRequestHandler) -> None:
        got.update(h.headers.items())
        got["path"] = h.path
        answer(b"ok")(h)

    httpd = servers(record)
    port = httpd.server_address[1]
    http_request("GET", f"http://u%40x:p%3Aw@127.0.0.1:{port}/a?b=1", deadline=2)
    assert got["path"] == "/a?b=1"
    assert got["Authorization"] == "Basic dUB4OnA6dw=="  # u@x:p:w
    assert got["Host"] == f"127.0.0.1:{port}"


class Proxy:
    """A tiny forward proxy on 127.0.0.1: absolute-URI requests and CONNECT tunnels."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.auth: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.forward()

            def do_GET(self) -> None:
                self.forward()

            def forward(self) -> None:
                outer.seen.append(f"{self.command} {self.path}")
                outer.auth.append(self.headers.get("Proxy-Authorization"))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("proxy-authorization", "connection")
                }
                got = http_request(self.command, self.path, deadline=5, body=body, headers=headers)
                self.send_response(got.status)
                self.send_header("Content-Length", str(len(got.body)))
                self.end_headers()
                self.wfile.write(got.body)

            def do_CONNECT(self) -> None:
                outer.seen.append(f"CONNECT {self.path}")
                outer.auth.append(self.headers.get("Proxy-Authorization"))
                host, port = self.path.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)), timeout=5)
                self.send_response(200)
                self.end_headers()
                pipes = [self.connection, upstream]
                try:
                    while True:
                        ready, _, _ = select.select(pipes, [], [], 5)
                        if not ready:
                            return
                        for sock in ready:
                            data = sock.recv(65536)
                            if not data:
                                return
                            (upstream if sock is self.connection else self.connection).sendall(data)
                finally:
                    upstream.close()

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = LoopbackHTTPServer(Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy()
    yield p
    p.close()


def test_plain_http_goes_through_the_proxy_with_its_credentials(servers: Any, proxy: Proxy) -> None:
    httpd = servers(answer(b"via"))
    with_auth = proxy.url.replace("http://", "http://me:pw@")
    got = http_request("GET", url(httpd, "/p"), deadline=5, proxy=with_auth)
    assert got.body == b"via"
    assert proxy.seen == [f"GET {url(httpd, '/p')}"]
    assert proxy.auth == ["Basic bWU6cHc="]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_https_tunnels_through_the_proxy_and_verifies_the_server(
    servers: Any, proxy: Proxy, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    httpd = servers(answer(b"secure"), tls=server_tls)
    client_tls = ssl.create_default_context(cafile=str(cert))
    target = url(httpd, "/s", scheme="https")
    got = http_request("POST", target, deadline=5, body=b"{}", proxy=proxy.url, tls=client_tls)
    assert got.body == b"secure"
    assert proxy.seen == [f"CONNECT 127.0.0.1:{httpd.server_address[1]}"]
    with pytest.raises(ssl.SSLError):  # the default context does not trust it
        http_request("GET", target, deadline=5)


def test_proxies_come_from_the_environment_unless_no_proxy_exempts_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert proxy_from_environment("http://127.0.0.1:8/x") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://plain.internal:3128")
    assert proxy_from_environment("https://hooks.example.com/x") == "http://proxy.internal:3128"
    assert proxy_from_environment("http://127.0.0.1:8/x") == "http://plain.internal:3128"
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1,.example.com")
    assert proxy_from_environment("http://127.0.0.1:8/x") is None
    assert proxy_from_environment("https://hooks.example.com/x") is None
    assert proxy_from_environment("https://hooks.other.org/x") == "http://proxy.internal:3128"
