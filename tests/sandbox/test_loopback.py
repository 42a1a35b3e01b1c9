"""The pieces that keep a sandboxed run on loopback: what loopback is, the sandboxed AWS
session, the process guard, and the environment packer gets."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from immutable_sdk.aws.loopback import DEAD_PROXY, is_loopback_host, is_loopback_url
from immutable_sdk.aws.session import AwsSession
from immutable_sdk.errors import UsageError


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.5.6.7", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("10.0.1.5", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("dynamodb.us-east-1.amazonaws.com", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
        (None, False),
    ],
)
def test_what_counts_as_loopback(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_loopback_urls() -> None:
    assert is_loopback_url("http://127.0.0.1:5000")
    assert is_loopback_url("http://[::1]:5000/")
    assert not is_loopback_url("https://dynamodb.us-east-1.amazonaws.com/")
    assert not is_loopback_url("http://user@10.0.0.1:80")
    assert not is_loopback_url(None)


def test_a_sandboxed_session_refuses_an_endpoint_off_loopback() -> None:
    with pytest.raises(UsageError, match=r"127\.0\.0\.1 only"):
        AwsSession(
            "us-east-1", endpoint_url="https://dynamodb.us-east-1.amazonaws.com", sandboxed=True
        )
    with pytest.raises(UsageError, match=r"127\.0\.0\.1 only"):
        AwsSession("us-east-1", sandboxed=True)  # no endpoint: real AWS
    with pytest.raises(UsageError, match="--profile prod"):
        AwsSession("us-east-1", endpoint_url="http://127.0.0.1:1", profile="prod", sandboxed=True)
    session = AwsSession("us-east-1", endpoint_url="http://127.0.0.1:1", sandboxed=True)
    session.endpoint_url = "https://ec2.amazonaws.com"  # even if something changes it later
    with pytest.raises(UsageError, match="refuses endpoint"):
        session.client("ec2")


def test_a_sandboxed_session_ignores_the_user_s_aws_settings(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.write_text("[profile prod]\nregion = eu-west-1\ncredential_process = false\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "prod")  # exists, but must not be read
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", "https://ec2.us-east-1.amazonaws.com")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # a proxy would refuse: none is used
    session = AwsSession("us-east-1", endpoint_url=aws, sandboxed=True, max_attempts=1)
    assert session.client("ec2").describe_regions()["Regions"]
    env = session.credentials_env()
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_PROFILE"] == "" and env["AWS_CONFIG_FILE"] == os.devnull
    assert env["HTTPS_PROXY"] == env["https_proxy"] == DEAD_PROXY
    assert env["AWS_ENDPOINT_URL"] == aws and env["AWS_EC2_METADATA_DISABLED"] == "true"


@pytest.fixture
def local_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


GUARDED = """
import socket, sys, urllib.request
from immutable_sdk.aws.loopback import guard
guard()
print(urllib.request.urlopen(sys.argv[1], timeout=5).status)
for target in ("http://10.0.1.5:8080/healthz", "http://checkout.example.com/"):
    try:
        urllib.request.urlopen(target, timeout=5)
    except OSError as exc:
        print("refused", getattr(exc, "reason", exc))
try:
    socket.create_connection(("169.254.169.254", 80), timeout=5)
except OSError as exc:
    print("refused", exc)
"""


def test_the_guard_refuses_what_leaves_loopback_before_it_connects(local_server: str) -> None:
    """A health check on an instance's private address, a webhook, instance metadata: none of
    them leaves a sandboxed process; loopback still works."""
    result = subprocess.run(
        [sys.executable, "-c", GUARDED, local_server],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "200"
    assert lines[1:] == [
        "refused sandbox: refused to connect to 10.0.1.5:8080; a sandboxed run reaches only "
        "127.0.0.1",
        "refused sandbox: refused to look up checkout.example.com; a sandboxed run reaches only "
        "127.0.0.1",
        "refused sandbox: refused to connect to 169.254.169.254:80; a sandboxed run reaches only "
        "127.0.0.1",
    ]


HTTP_CHECK_SPEC = """apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web: {builder: ami, id: ami-03c3da4cfa8e8943a}
fleets:
  web:
    image: web
    instance_type: t3.micro
    subnets: [shop-a]
    capacity: {min: 1, desired: 1, max: 2}
    strategy: {type: rolling, batch_size: 1}
    health:
      timeout: 3s
      checks:
        - {type: http, url: "http://{private_ip}:8080/healthz"}
"""


@pytest.mark.slow
def test_a_health_check_on_a_private_address_is_refused_in_the_sandbox(tmp_path: Path) -> None:
    """The emulator's instances have addresses on no network of this machine: a sandboxed
    apply does not try them, and says why its gate failed."""
    from .netguard import NetGuard

    guard = NetGuard(tmp_path / "guard")
    (tmp_path / "spec.yaml").write_text(HTTP_CHECK_SPEC)
    # strace only (the audit hook of the guard would refuse first): the SDK's own guard must
    # keep the connect from happening at all
    result = guard.run(
        ["--sandbox", "apply", "--yes", "-f", "spec.yaml"], cwd=tmp_path, env={"NETGUARD_LOG": ""}
    )
    assert result.returncode == 1, result.stderr
    assert "rolled_back" in result.stdout
    assert "sandbox: refused to connect to 10.0." in result.stdout + result.stderr
    assert guard.escapes() == []
