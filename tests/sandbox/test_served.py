"""Commands attached to ``sandbox serve`` share its state: the spec's backend on the emulator.

A rollout is left holding its fleet's lock (its process killed during a pause); every other
command run with the served sandbox's variables sees that rollout and that lock, and
``unlock --force`` removes the lock that is held, for the SQLite and the DynamoDB backend.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from immutable_sdk.cli.state import unlock
from immutable_sdk.testing import AMI_V1, AMI_V2

from .netguard import NetGuard
from .test_every_command import served_env

SPEC = """apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
{state}
images:
  web: {{builder: ami, id: "${{IMAGE_ID}}"}}
fleets:
  web:
    image: web
    instance_type: t3.micro
    subnets: [shop-a]
    load_balancer: {{target_groups: [shop-web]}}
    capacity: {{min: 1, desired: 2, max: 4}}
    strategy: {{type: rolling, batch_size: 1, pause: 1h}}
    health: {{timeout: 1m, checks: [{{type: ec2}}]}}
"""
STATES = {
    "local": "state: {backend: local, path: state/spec.db}",
    "dynamodb": "state: {backend: dynamodb, table: shop-team-state}",
}


class Served:
    """A served sandbox for the spec in ``root``, and commands attached to it."""

    def __init__(self, root: Path, guard: NetGuard) -> None:
        self.root, self.guard = root, guard
        env_file = root / "sandbox.env"
        self.server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "immutable_sdk",
                "sandbox",
                "serve",
                "-f",
                "spec.yaml",
                "--env-file",
                str(env_file),
            ],
            cwd=root,
            env=guard.env({"IMAGE_ID": AMI_V1}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.env = served_env(self.server, env_file)

    def run(self, *args: str, image: str = AMI_V1) -> subprocess.CompletedProcess[str]:
        result = self.guard.run(
            [*args, "-f", "spec.yaml"], cwd=self.root, env={**self.env, "IMAGE_ID": image}
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def start(self, *args: str, image: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "immutable_sdk", *args, "-f", "spec.yaml"],
            cwd=self.root,
            env=self.guard.env({**self.env, "IMAGE_ID": image}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def status(self) -> dict[str, Any]:
        result = self.run("status", "-o", "json")
        assert result.returncode == 0, result.stderr
        (entry,) = json.loads(result.stdout)["fleets"]
        return dict(entry)

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.env["IMMUTABLE_SDK_SANDBOX_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> str:
        self.server.send_signal(signal.SIGTERM)
        _, err = self.server.communicate(timeout=60)
        assert self.server.returncode == 0, err
        return err


@pytest.fixture(params=sorted(STATES))
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    root = tmp_path / "project"
    root.mkdir()
    (root / "spec.yaml").write_text(SPEC.format(state=STATES[request.param]))
    box = Served(root, NetGuard(tmp_path / "guard"))
    try:
        yield box
    finally:
        if box.server.poll() is None:
            box.stop()


def _wait_for(what: str, check: Any, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)  # polling another process through the CLI


@pytest.mark.slow
def test_every_command_sees_the_served_state_and_unlock_finds_the_held_lock(
    served: Served,
) -> None:
    first = served.run("apply", "--yes")
    assert first.returncode == 0, first.stderr

    rollout = served.start("apply", "--yes", image=AMI_V2)  # pauses 1h after its first batch
    try:
        held = _wait_for(
            "the second apply to hold the lock in its pause",
            lambda: (s := served.status())["lock"] and s["rollout_in_progress"] and s,
        )
    finally:
        os.kill(rollout.pid, signal.SIGKILL)  # a crashed rollout: its lock stays behind
        rollout.wait(timeout=30)
    owner = held["lock"]["owner"]

    after_crash = served.status()
    assert after_crash["lock"]["owner"] == owner  # every command reads the same state
    history = served.run("history", "-o", "json")
    assert held["rollout_in_progress"]["id"] in history.stdout

    confirm = ["--yes"] if any(p.name == "yes" for p in unlock.params) else []
    result = served.run("unlock", "--fleet", "web", "--force", *confirm)
    assert result.returncode == 0, result.stderr
    assert f"removed the lock of fleet 'web' held by {owner}" in result.stdout
    assert served.status()["lock"] is None
    again = served.run("unlock", "--fleet", "web", "--force", *confirm)
    assert "was not locked" in again.stdout

    aborted = served.run("abort", "--fleet", "web")  # the same state again: back to v1
    assert aborted.returncode == 0, aborted.stderr
    assert served.status()["rollout_in_progress"] is None

    # the spec's own state file was never written: a sandbox keeps to the served state
    assert not (served.root / "state").exists()
    tables = served.client("dynamodb").list_tables()["TableNames"]
    served_file = Path(served.env["IMMUTABLE_SDK_SANDBOX_STATE"])
    if "dynamodb" in (served.root / "spec.yaml").read_text():
        assert tables == ["shop-team-state"]
        assert not served_file.exists()
    else:
        assert tables == []
        assert served_file.exists()
    assert served.guard.escapes() == []


@pytest.mark.parametrize("served_too", [False, True], ids=["own", "served"])
def test_state_init_uses_the_spec_s_dynamodb_table_on_the_sandbox(
    tmp_path: Path, served_too: bool
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "spec.yaml").write_text(SPEC.format(state=STATES["dynamodb"]))
    guard = NetGuard(tmp_path / "guard")
    if not served_too:
        result = guard.run(
            ["--sandbox", "state", "init", "-f", "spec.yaml", "-o", "json"],
            cwd=root,
            env={"IMAGE_ID": AMI_V1},
        )
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert (data["backend"], data["location"], data["created"]) == (
            "dynamodb",
            "shop-team-state",
            True,
        )
    else:
        box = Served(root, guard)
        try:
            result = box.run("state", "init")
            # `sandbox serve` created it already, as a command's first use would have
            assert result.returncode == 0, result.stderr
            assert "DynamoDB table 'shop-team-state' in us-east-1 on the sandbox" in result.stdout
            assert "already exists" in result.stdout
            table = box.client("dynamodb").describe_table(TableName="shop-team-state")["Table"]
            assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
        finally:
            err = box.stop()
        assert "state table shop-team-state" in err  # serve names what it created
    assert guard.escapes() == []
