"""On ``--sandbox``: a served sandbox runs the state machine; workers are other processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from immutable_sdk.clock import RealClock
from immutable_sdk.testing.orchestrator import JOURNAL_VAR, SCRIPT_VAR, read_lines

from .conftest import SRC, TICK, spec_text

pytestmark = pytest.mark.slow
FLEETS = ["web", "api"]


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "immutable_sdk", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_rollout_on_step_functions_runs_on_a_served_sandbox(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(FLEETS, [("front", ["web"], "1s"), ("back", ["api"], "0s")]))
    script = {f: [{"state": "progressing", "next_in": 1}, {"state": "converged"}] for f in FLEETS}
    (tmp_path / "script.json").write_text(json.dumps(script))
    base = {
        **os.environ,
        "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
        SCRIPT_VAR: str(tmp_path / "script.json"),
        JOURNAL_VAR: str(tmp_path / "journal.jsonl"),
    }
    # the orchestrator needs a sandbox that outlives one command
    refused = cli(base, "orchestrator", "install", "-f", str(spec), "--yes", "--sandbox")
    assert refused.returncode == 2
    assert "needs a sandbox that outlives this command" in refused.stderr

    env_file = tmp_path / "sb.env"
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "immutable_sdk",
            "sandbox",
            "serve",
            "-f",
            str(spec),
            "--env-file",
            str(env_file),
        ],
        env=base,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        clock = RealClock()
        deadline = clock.monotonic() + 60
        while not env_file.exists():
            assert clock.monotonic() < deadline and serve.poll() is None, "no sandbox"
            clock.sleep(0.1)
        env = dict(base)
        for line in env_file.read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
        installed = cli(env, "orchestrator", "install", "-f", str(spec), "--yes", "--sandbox")
        assert installed.returncode == 0, installed.stderr
        applied = cli(
            env, "apply", "-f", str(spec), "--yes", "--on", "step-functions", "-o", "json"
        )
        assert applied.returncode == 0, applied.stderr
        arn = json.loads(applied.stdout)["execution_arn"]
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "immutable_sdk",
                "worker",
                "-f",
                str(spec),
                "--sandbox",
                "--tick",
                TICK,
                "--concurrency",
                "2",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while True:
            shown = cli(env, "status", "-f", str(spec), "--on", "step-functions", "-o", "json")
            assert shown.returncode == 0, shown.stderr
            execution = json.loads(shown.stdout)["execution"]
            if execution["status"] != "RUNNING":
                break
            assert clock.monotonic() < deadline + 60, execution
            clock.sleep(0.5)
        assert (execution["execution_arn"], execution["status"]) == (arn, "SUCCEEDED")
        assert sorted(r["unit"] for r in read_lines(tmp_path / "journal.jsonl")) == [
            "api",
            "api",
            "web",
            "web",
        ]
    finally:
        for proc in (worker, serve):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
