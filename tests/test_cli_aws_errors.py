"""AWS problems reach the user as one clear line and exit code 1, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

SPECS = Path(__file__).resolve().parent.parent / "specs" / "examples"


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "immutable_sdk", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_MAX_ATTEMPTS="1",
    )
    return env


def test_missing_credentials_is_a_clear_error(tmp_path: Path) -> None:
    out = run(["plan", "-f", str(SPECS / "rolling.yaml")], base_env(), tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "no AWS credentials found" in out.stderr
    assert out.stderr.startswith("error: ")


def test_unreachable_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**base_env(), "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
    out = run(
        ["--endpoint-url", f"http://127.0.0.1:{port}", "plan", "-f", str(SPECS / "rolling.yaml")],
        env,
        tmp_path,
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "cannot reach AWS" in out.stderr
