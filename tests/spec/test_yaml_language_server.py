"""The published editor schema in the real yaml-language-server: completions and errors.

Installs yaml-language-server with npm into a cache directory (once, bounded), starts it on
stdio and speaks just enough LSP: open a spec with the ``# yaml-language-server: $schema=``
modeline, read the diagnostics, ask for completions. Skipped cleanly where npm or the registry
is not available (a fresh CI machine still passes); tests/spec/test_editor_schema.py checks
the same schema with a draft-07 validator everywhere.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "docs" / "schema" / "spec-v1.json"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "immutable-sdk-tests"
VERSION = "1"  # yaml-language-server major version
TIMEOUT = 60.0  # seconds for any one answer of the server

pytestmark = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")


def _server() -> Path:
    prefix = CACHE / f"yaml-language-server-{VERSION}"
    binary = prefix / "node_modules" / ".bin" / "yaml-language-server"
    if not binary.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--silent",
                 f"yaml-language-server@{VERSION}"],
                cwd=prefix, capture_output=True, timeout=180, check=True,
            )  # fmt: skip
        except (subprocess.SubprocessError, OSError) as exc:
            pytest.skip(f"cannot install yaml-language-server with npm: {exc}")
    return binary


class Lsp:
    """A minimal LSP client over the server's stdio."""

    def __init__(self, binary: Path) -> None:
        self.proc = subprocess.Popen(
            [str(binary), "--stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not line:
                return
            self.messages.put(json.loads(stream.read(length)))

    def send(self, method: str, params: Any, *, request: bool = True) -> int | None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        ident = None
        if request:
            self.next_id += 1
            ident = message["id"] = self.next_id
        body = json.dumps(message).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        return ident

    def wait(self, match: Any) -> dict[str, Any]:
        while True:
            try:
                message = self.messages.get(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError("yaml-language-server did not answer in time") from None
            if message.get("method") == "workspace/configuration":  # settings, per item
                items = message["params"]["items"]
                reply = {"jsonrpc": "2.0", "id": message["id"], "result": [None] * len(items)}
                body = json.dumps(reply).encode()
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
                self.proc.stdin.flush()
            elif match(message):
                return message

    def request(self, method: str, params: Any) -> Any:
        ident = self.send(method, params)
        return self.wait(lambda m: m.get("id") == ident and "method" not in m).get("result")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def lsp() -> Iterator[Lsp]:
    client = Lsp(_server())
    try:
        client.request(
            "initialize",
            {"processId": os.getpid(), "rootUri": ROOT.as_uri(), "capabilities": {}},
        )
        client.send("initialized", {}, request=False)
        settings = {"yaml": {"validate": True, "completion": True, "hover": True}}
        client.send("workspace/didChangeConfiguration", {"settings": settings}, request=False)
        yield client
    finally:
        client.close()


def _open(lsp: Lsp, path: Path, text: str) -> list[dict[str, Any]]:
    uri = path.as_uri()
    lsp.send(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}},
        request=False,
    )
    found = lsp.wait(
        lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri
    )
    diagnostics: list[dict[str, Any]] = found["params"]["diagnostics"]
    return diagnostics


SPEC = f"""# yaml-language-server: $schema={SCHEMA.as_uri()}
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web: {{builder: ami, id: ami-0abcdef1234567890}}
fleets:
  web:
    image: web
    instance_type: t3.micro
    subnets: [subnet-1]
    capacity: {{min: 1, desired: 2, max: 4}}
    strategy: {{type: rolling, batch_size: 1}}
    health: {{timeout: 1h30m}}
"""


def test_a_valid_spec_has_no_diagnostics(lsp: Lsp, tmp_path: Path) -> None:
    # the server reads the schema (a bad spec has errors), then finds none in the valid one
    assert _open(lsp, tmp_path / "first.yaml", SPEC.replace("name: shop", "name: 1"))
    assert _open(lsp, tmp_path / "ok.yaml", SPEC) == []


def test_mistakes_are_reported_where_they_are(lsp: Lsp, tmp_path: Path) -> None:
    bad = SPEC.replace("desired: 2", "desired: two").replace("timeout: 1h30m", "timeout: soon")
    diagnostics = _open(lsp, tmp_path / "bad.yaml", bad + "    colour: blue\n")
    lines = {d["range"]["start"]["line"]: d["message"] for d in diagnostics}
    text = bad.splitlines()
    assert any("desired: two" in text[n] for n in lines), diagnostics
    assert any("timeout: soon" in text[n] for n in lines), diagnostics
    assert any("colour" in m for m in lines.values()), diagnostics


def test_completions_come_from_the_schema(lsp: Lsp, tmp_path: Path) -> None:
    text = SPEC + "    \n"
    path = tmp_path / "complete.yaml"
    _open(lsp, path, text)
    line = len(text.splitlines()) - 1
    result = lsp.request(
        "textDocument/completion",
        {"textDocument": {"uri": path.as_uri()}, "position": {"line": line, "character": 4}},
    )
    items = result["items"] if isinstance(result, dict) else result
    labels = {i["label"] for i in items}
    assert {"rollback", "load_balancer", "depends_on"} <= labels, labels
