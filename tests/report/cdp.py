"""Headless Chromium driven over the DevTools protocol, on loopback, cut off from the network.

``open_page(path)`` starts Debian's ``chromium`` with a scratch profile, a proxy on a dead
loopback port and a resolver that resolves no name, so a page that tried to load anything from
the network would fail (and the attempt is seen as a ``Network.requestWillBeSent``). It loads
the file, and returns what a test checks: console errors, requests other than the file
itself, and a PNG screenshot of the whole page.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TIMEOUT = 60.0  # seconds for chromium to start and the page to load, at most


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebSocket:
    """The client side of RFC 6455, text frames only: enough for the DevTools protocol."""

    def __init__(self, url: str, timeout: float) -> None:
        assert url.startswith("ws://127.0.0.1:"), url  # loopback only
        host_port, _, path = url[len("ws://") :].partition("/")
        host, port = host_port.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"DevTools refused the websocket: {head!r}")

    def send(self, text: str) -> None:
        payload = text.encode()
        header = bytearray([0x81])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        header += mask
        self.sock.sendall(bytes(header) + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            out += chunk
        return bytes(out)

    def receive(self) -> str:
        message = bytearray()
        while True:
            first, second = self._exact(2)
            n = second & 0x7F
            if n == 126:
                (n,) = struct.unpack(">H", self._exact(2))
            elif n == 127:
                (n,) = struct.unpack(">Q", self._exact(8))
            payload = self._exact(n)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the websocket")
            if opcode in (0x9, 0xA):  # ping, pong: not used by DevTools
                continue
            message += payload
            if first & 0x80:
                return message.decode()

    def close(self) -> None:
        self.sock.close()


@dataclass
class Page:
    """What the browser saw while loading one file."""

    url: str
    png: bytes = b""
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL requested but the file's
    width: int = 0
    height: int = 0
    value: Any = None  # what ``evaluate`` returned


class DevTools:
    def __init__(self, ws: WebSocket, deadline: float) -> None:
        self.ws, self.deadline, self.next_id = ws, deadline, 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            self._check_time(method)
            reply = json.loads(self.ws.receive())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_for(self, event: str) -> dict[str, Any]:
        for seen in self.events:
            if seen.get("method") == event:
                return seen
        while True:
            self._check_time(event)
            message = json.loads(self.ws.receive())
            self.events.append(message)
            if message.get("method") == event:
                return message

    def _check_time(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"chromium: no answer to {what} within {TIMEOUT:g}s")


def open_page(
    path: Path, *, width: int = 1100, scale: float = 0.5, evaluate: str | None = None
) -> Page:
    """Load ``path`` in headless Chromium; ``scale`` shrinks the screenshot (decoding a PNG in
    Python costs time per pixel); ``evaluate``: a JavaScript expression run after the load
    (a promise is awaited), its value in ``Page.value``."""
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
    deadline = time.monotonic() + TIMEOUT
    profile = tempfile.mkdtemp(prefix="report-chromium-")
    dead = dead_port()
    args = [
        binary,
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--proxy-server=http://127.0.0.1:{dead}",  # anything leaving goes nowhere
        "--proxy-bypass-list=<-loopback>",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--metrics-recording-only",
        "--mute-audio",
        f"--window-size={width},900",
        "about:blank",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ws: WebSocket | None = None
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"chromium exited with {proc.returncode}: {err[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port, browser_path = port_file.read_text().splitlines()[:2]
        ws = WebSocket(f"ws://127.0.0.1:{port}{browser_path}", timeout=TIMEOUT)
        tools = DevTools(ws, deadline)
        target = tools.call("Target.createTarget", url="about:blank")["targetId"]
        session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.call(f"{domain}.enable", session)
        url = path.resolve().as_uri()
        tools.call("Page.navigate", session, url=url)
        tools.wait_for("Page.loadEventFired")
        value = None
        if evaluate is not None:
            answer = tools.call(
                "Runtime.evaluate",
                session,
                expression=evaluate,
                awaitPromise=True,
                returnByValue=True,
            )
            if "exceptionDetails" in answer:
                raise RuntimeError(f"evaluate failed: {answer['exceptionDetails']}")
            value = answer.get("result", {}).get("value")
        metrics = tools.call("Page.getLayoutMetrics", session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        w, h = int(size["width"]), int(size["height"])
        shot = tools.call(
            "Page.captureScreenshot",
            session,
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": w, "height": h, "scale": scale},
        )
        page = Page(url=url, png=base64.b64decode(shot["data"]), width=w, height=h, value=value)
        for event in tools.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                page.console_errors.append(json.dumps(params.get("args")))
            elif method == "Runtime.exceptionThrown":
                page.console_errors.append(json.dumps(params.get("exceptionDetails")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                page.console_errors.append(str(params["entry"].get("text")))
            elif method == "Network.requestWillBeSent":
                requested = str(params.get("request", {}).get("url"))
                if requested != url:
                    page.requests.append(requested)
        return page
    finally:
        if ws is not None:
            ws.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
        shutil.rmtree(profile, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.report.cdp REPORT.html OUT.png [SCALE]``: a screenshot of a report, as
    the docs show one (docs/images/report-canary.png)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: python -m tests.report.cdp REPORT.html OUT.png [SCALE]", file=sys.stderr)
        return 2
    page = open_page(Path(args[0]), scale=float(args[2]) if len(args) == 3 else 0.75)
    if page.console_errors or page.requests:
        print(f"console errors {page.console_errors}, requests {page.requests}", file=sys.stderr)
        return 1
    Path(args[1]).write_bytes(page.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
