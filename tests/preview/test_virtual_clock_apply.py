"""``apply --sandbox --virtual-clock``: a shipped example's hours of waits pass in seconds.

The canary example (a 5m bake, a 5m analysis, a 10m bake, a manual pause and an hour of
keep_previous) is created, then rolled to a new image, on a served sandbox as scripts/demo
does, with --auto-promote standing in for the operator. Its report is drawn from the journal.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.sandbox.test_every_command import served_env

from immutable_sdk.cli import main

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.packer,
    pytest.mark.skipif(shutil.which("packer") is None, reason="needs the packer binary"),
]


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "immutable_sdk", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=180,
    )


def test_the_canary_example_applies_in_seconds_with_its_hour_of_waits(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    spec = "specs/examples/canary.yaml"
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base.update(CHECKPOINT_DISABLE="1", IMMUTABLE_SDK_DISABLE_PLUGIN_AUTOLOAD="1")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "immutable_sdk",
            "sandbox",
            "serve",
            "-f",
            spec,
            "--env-file",
            str(tmp_path / "sandbox.env"),
        ],
        cwd=tmp_path,
        env=base,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        env = {**base, **served_env(server, tmp_path / "sandbox.env")}
        first = cli(
            {**env, "APP_VERSION": "1.0.0"},
            tmp_path,
            "apply",
            "-f",
            spec,
            "--yes",
            "--virtual-clock",
        )
        assert first.returncode == 0, first.stderr[-3000:]
        start = time.monotonic()
        second = cli(
            {**env, "APP_VERSION": "1.1.0"},
            tmp_path,
            "apply",
            "-f",
            spec,
            "--yes",
            "--virtual-clock",
            "--auto-promote",
        )
        wall = time.monotonic() - start
        assert second.returncode == 0, second.stderr[-3000:]
        assert wall < 60, f"{wall:.1f}s of wall time"
        log = second.stdout + second.stderr
        assert "bake 1h" in log and "pause until promoted" in log
        assert "rollout promoted" in log
        report = tmp_path / "canary.html"
        drawn = cli(
            {**env, "APP_VERSION": "1.1.0"},
            tmp_path,
            "history",
            "-f",
            spec,
            "--fleet",
            "checkout",
            "--report",
            str(report),
        )
        assert drawn.returncode == 0, drawn.stderr
        page = report.read_text()
        assert "ended by an operator&#x27;s promote" in page
        assert "slot green" in page and "1h" in page
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)


def test_virtual_clock_and_auto_promote_are_for_the_sandbox_only(tmp_path: Path) -> None:
    runner = CliRunner()
    spec = str(ROOT / "specs" / "examples" / "canary.yaml")
    for flag in ("--virtual-clock", "--auto-promote"):
        out = runner.invoke(main, ["apply", "-f", spec, "--yes", flag])
        assert out.exit_code == 2, out.output
        assert f"{flag} is for the embedded sandbox only (--sandbox)" in out.stderr
