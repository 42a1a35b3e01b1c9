"""``immutable-sdk state init`` and ``immutable-sdk unlock``, as a person runs them."""

from __future__ import annotations

import json
import os
import pty
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result

from immutable_sdk.cli import main
from immutable_sdk.errors import ExitCode
from immutable_sdk.state.base import SCHEMA_VERSION
from immutable_sdk.state.dynamodb import DynamoDbStateStore
from immutable_sdk.state.records import iso
from immutable_sdk.state.sqlite import SqliteStateStore
from immutable_sdk.testing import SpecWriter

from .conftest import T0

SRC = str(Path(__file__).resolve().parents[2] / "src")

LOCAL_SPEC = """
    apiVersion: immutable-sdk/v1
    name: shop
    region: us-east-1
    state: {backend: local, path: state/shop.db}
"""

DYNAMODB_SPEC = """
    apiVersion: immutable-sdk/v1
    name: shop
    region: us-east-1
    state: {backend: dynamodb, table: TABLE}
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def local_spec(spec_writer: SpecWriter) -> Path:
    return spec_writer(LOCAL_SPEC)


def test_state_init_creates_the_sqlite_file_once(local_spec: Path) -> None:
    db = local_spec.parent / "state" / "shop.db"
    first = run("state", "init", "-f", str(local_spec))
    assert first.exit_code == 0, first.output
    assert (
        f"created state database {db} (schema version {SCHEMA_VERSION}, mode 0600)" in first.output
    )
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    again = run("state", "init", "-f", str(local_spec), "-o", "json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output) == {
        "format_version": "1.0",
        "backend": "local",
        "created": False,
        "location": str(db),
        "schema_version": SCHEMA_VERSION,
    }


def test_unlock_without_force_refuses_and_explains(local_spec: Path) -> None:
    db = local_spec.parent / "state" / "shop.db"
    with SqliteStateStore(db, "shop") as store:
        store.acquire_lock("web", "host:1:a", 600, T0)
    result = run("unlock", "--fleet", "web", "-f", str(local_spec))
    assert result.exit_code == ExitCode.INVALID
    assert "even while a rollout still holds it" in result.output
    assert "--force" in result.output
    with SqliteStateStore(db, "shop") as store:
        assert store.get_lock("web") is not None


def test_unlock_force_removes_the_lock_and_says_whose_it_was(local_spec: Path) -> None:
    db = local_spec.parent / "state" / "shop.db"
    with SqliteStateStore(db, "shop") as store:
        store.acquire_lock("web", "host:1:a", 600, T0)
    result = run("unlock", "--fleet", "web", "--force", "--yes", "-f", str(local_spec))
    assert result.exit_code == 0, result.output
    assert (
        "removed the lock of fleet 'web' held by host:1:a since 2027-01-15T08:00:00+00:00 "
        "(lease until 2027-01-15T08:10:00+00:00, epoch 1); that holder's next write or AWS "
        "change is refused"
    ) in result.output
    with SqliteStateStore(db, "shop") as store:
        assert store.get_lock("web") is None
    again = run("unlock", "--fleet", "web", "--force", "-f", str(local_spec))
    assert again.exit_code == 2  # a removed fleet's lock goes; an unknown name is an error
    assert "the spec has no fleet 'web' (fleets: none) and no lock of that name" in again.output


def test_unlock_without_a_state_file_creates_nothing(local_spec: Path) -> None:
    result = run("unlock", "--fleet", "web", "--force", "-f", str(local_spec))
    assert result.exit_code == 2, result.output  # the spec has no fleet web
    assert "nothing removed" in result.output
    assert not (local_spec.parent / "state").exists()


def test_unlock_json_output(local_spec: Path) -> None:
    db = local_spec.parent / "state" / "shop.db"
    with SqliteStateStore(db, "shop") as store:
        store.acquire_lock("web", "host:1:a", 600, T0)
    result = run("unlock", "--fleet", "web", "--force", "-y", "-f", str(local_spec), "-o", "json")
    assert json.loads(result.output) == {
        "format_version": "1.0",
        "fleet": "web",
        "removed": {"owner": "host:1:a", "acquired_at": T0, "lease_until": T0 + 600, "epoch": 1},
    }


@pytest.fixture
def client(aws: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=aws, region_name="us-east-1")


def test_state_init_creates_the_dynamodb_table_once(
    aws: str, client: Any, spec_writer: SpecWriter
) -> None:
    spec = spec_writer(DYNAMODB_SPEC.replace("TABLE", "shop-state"))
    first = run("--endpoint-url", aws, "state", "init", "-f", str(spec))
    assert first.exit_code == 0, first.output
    assert "created DynamoDB table 'shop-state' in us-east-1" in first.output
    table = client.describe_table(TableName="shop-state")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    again = run("--endpoint-url", aws, "state", "init", "-f", str(spec))
    assert again.exit_code == 0, again.output
    assert "DynamoDB table 'shop-state' in us-east-1 already exists" in again.output


def test_state_init_refuses_a_table_with_another_key_schema(
    aws: str, client: Any, spec_writer: SpecWriter
) -> None:
    client.create_table(
        TableName="taken",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    spec = spec_writer(DYNAMODB_SPEC.replace("TABLE", "taken"))
    result = run("--endpoint-url", aws, "state", "init", "-f", str(spec))
    assert result.exit_code == ExitCode.FAILED
    assert "error: DynamoDB table 'taken' has the key schema id (HASH, type S)" in result.output
    assert client.scan(TableName="taken")["Items"] == []


def test_unlock_force_on_the_dynamodb_backend(
    aws: str, client: Any, spec_writer: SpecWriter
) -> None:
    spec = spec_writer(DYNAMODB_SPEC.replace("TABLE", "shop-state"))
    assert run("--endpoint-url", aws, "state", "init", "-f", str(spec)).exit_code == 0
    DynamoDbStateStore(client, "shop-state", "shop").acquire_lock("api", "host:9:z", 60, T0)
    result = run(
        "--endpoint-url", aws, "unlock", "--fleet", "api", "--force", "--yes", "-f", str(spec)
    )
    assert result.exit_code == 0, result.output
    assert "removed the lock of fleet 'api' held by host:9:z" in result.output
    assert DynamoDbStateStore(client, "shop-state", "shop").get_lock("api") is None


def test_unlock_on_a_missing_table_points_at_state_init(aws: str, spec_writer: SpecWriter) -> None:
    spec = spec_writer(DYNAMODB_SPEC.replace("TABLE", "never-made"))
    result = run("--endpoint-url", aws, "unlock", "--fleet", "web", "--force", "-f", str(spec))
    assert result.exit_code == ExitCode.FAILED
    assert "create it with `immutable-sdk state init -f SPEC`" in result.output


def test_unlock_of_a_live_lease_without_a_terminal_refuses_naming_the_holder(
    local_spec: Path,
) -> None:
    db = local_spec.parent / "state" / "shop.db"
    now = time.time()
    with SqliteStateStore(db, "shop") as store:
        store.acquire_lock("web", "host:1:a", 600, now)
    result = run("unlock", "--fleet", "web", "--force", "-f", str(local_spec))
    assert result.exit_code == ExitCode.INVALID
    lines = [line for line in result.output.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: fleet 'web' is locked by host:1:a")
    assert f"since {iso(now)}" in lines[0] and f"valid until {iso(now + 600)}" in lines[0]
    assert "pass --yes" in lines[0]
    with SqliteStateStore(db, "shop") as store:
        assert store.get_lock("web") is not None


def test_unlock_of_an_expired_lease_asks_nothing(local_spec: Path) -> None:
    db = local_spec.parent / "state" / "shop.db"
    with SqliteStateStore(db, "shop") as store:
        store.acquire_lock("web", "host:1:a", 60, time.time() - 600)
    result = run("unlock", "--fleet", "web", "--force", "-f", str(local_spec))
    assert result.exit_code == 0, result.output
    assert "removed the lock of fleet 'web' held by host:1:a" in result.output


UNLOCK_WEB = ("unlock", "--fleet", "web", "--force")


@pytest.mark.parametrize("answer", ["y", "n"])
def test_unlock_of_a_live_lease_asks_on_the_terminal(local_spec: Path, answer: str) -> None:
    db = local_spec.parent / "state" / "shop.db"
    with SqliteStateStore(db, "shop") as store:
        store.acquire_lock("web", "host:1:a", 600, time.time())
    primary, secondary = pty.openpty()
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "immutable_sdk", *UNLOCK_WEB, "-f", str(local_spec)],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=local_spec.parent,
    )
    os.close(secondary)
    os.write(primary, f"{answer}\n".encode())
    out, err = proc.communicate(timeout=60)
    os.close(primary)
    assert "fleet 'web' is locked by host:1:a since" in err.decode()
    assert "Remove it?" in err.decode()
    with SqliteStateStore(db, "shop") as store:
        lock = store.get_lock("web")
    if answer == "y":
        assert proc.returncode == 0, err.decode()
        assert "removed the lock of fleet 'web'" in out.decode()
        assert lock is None
    else:
        assert proc.returncode == ExitCode.INVALID
        assert "error: unlock cancelled; fleet 'web' is still locked" in err.decode()
        assert lock is not None
