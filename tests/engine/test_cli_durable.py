"""Durability as a user of the command meets it: status of an unfinished rollout, abort,
a locked fleet (exit 3), the lock options, and state that cannot be read (exit 1, untouched)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from immutable_sdk.cli import main
from immutable_sdk.clock import VirtualClock
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec
from immutable_sdk.state.sqlite import SqliteStateStore

from .conftest import AMI_V1, AMI_V2, World, fleet_spec
from .durable import CrashAtBoundary, assert_converged
from .test_resume import crashed_rollout

STATE = "state: {backend: local, path: state.db}\n"


def cli(world: World, *args: str) -> Result:
    return CliRunner().invoke(
        main,
        ["--endpoint-url", world.url, *args],
        catch_exceptions=False,
        env={"COLUMNS": "400"},  # tables on one line each
    )


def spec_on_disk(world: World, desired: int = 4) -> str:
    # The CLI runs on the real clock: the engines of the test run an hour behind it, so
    # that the leases they take have expired for the CLI.
    world.clock = VirtualClock(start=time.time() - 3600)
    path = world.write(fleet_spec(desired=desired) + STATE)
    Sandbox.attach(world.url).seed(load_spec([path]))
    return str(path)


@pytest.mark.slow
def test_status_shows_an_unfinished_rollout_and_abort_rolls_it_back(world: World) -> None:
    spec = spec_on_disk(world)
    with world.engine(AMI_V1) as engine:
        v1 = engine.apply().fleet("web").to_release or ""
    record = crashed_rollout(world, CrashAtBoundary("started", 1))  # a gate, never finished
    world.monkeypatch.setenv("WEB_AMI", AMI_V2)

    text = cli(world, "status", "-f", spec)
    assert text.exit_code == 0, text.output
    assert record.id in text.stdout and "unfinished: apply resumes it" in text.stdout
    entry = json.loads(cli(world, "status", "-f", spec, "-o", "json").stdout)["fleets"][0]
    ro = entry["rollout_in_progress"]
    assert (ro["id"], ro["resumable"], ro["last_step"]["kind"]) == (record.id, True, "gate")
    plan = json.loads(cli(world, "plan", "-f", spec, "-o", "json").stdout)
    assert f"resume unfinished rollout {record.id}" in plan["items"][0]["reasons"]

    aborted = cli(world, "abort", "--fleet", "web", "-f", spec)
    assert aborted.exit_code == 0, aborted.output
    assert f"rollout {record.id} aborted, back on {v1}" in aborted.stdout
    assert_converged(world, v1, AMI_V1, desired=4, releases=[v1])
    again = cli(world, "abort", "--fleet", "web", "-f", spec)
    assert again.exit_code == 2 and "no rollout in progress" in again.stderr


def test_apply_on_a_locked_fleet_exits_3_naming_the_holder(world: World) -> None:
    spec = spec_on_disk(world, desired=2)
    with SqliteStateStore(world.tmp / "state.db", "shop") as state:
        state.acquire_lock("web", "build-7:4242:abc123", 600, time.time())
    out = cli(world, "apply", "-f", spec, "--yes")
    assert out.exit_code == 3, out.output
    assert "locked by build-7:4242:abc123 since" in out.stdout
    assert "lease expires at" in out.stdout
    waited = cli(world, "apply", "-f", spec, "--yes", "--wait-for-lock", "1s", "-o", "json")
    assert waited.exit_code == 3
    assert json.loads(waited.stdout)["fleets"][0]["outcome"] == "locked"
    assert world.group() == {}  # nothing was created


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--lease", "1s", "'--lease': at least 3s"),
        ("--lease", "soon", "'--lease': expected a duration"),
        ("--wait-for-lock", "forever", "'--wait-for-lock': expected a duration"),
        ("--wait-for-lock", "1h30", "'--wait-for-lock': expected a duration"),
    ],
)
def test_lock_options_are_durations(world: World, option: str, value: str, message: str) -> None:
    spec = spec_on_disk(world, desired=2)
    out = cli(world, "apply", "-f", spec, "--yes", option, value)
    assert out.exit_code == 2 and message in out.stderr, out.output


def newer_schema(path: Path) -> None:
    SqliteStateStore(path, "shop").close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.close()


@pytest.mark.parametrize("command", ["apply", "plan", "status"])
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"not a database at all" * 100), "not an SQLite database"),
        (newer_schema, "schema version 99"),
    ],
    ids=["garbage", "newer-schema"],
)
def test_unreadable_state_is_a_clear_error_and_left_untouched(
    world: World, command: str, make: Callable[[Path], object], message: str
) -> None:
    spec = spec_on_disk(world, desired=2)
    path = world.tmp / "state.db"
    make(path)
    before = path.read_bytes()
    args = [command, "-f", spec] + (["--yes"] if command == "apply" else [])
    out = cli(world, *args)
    assert out.exit_code == 1, out.output
    assert out.stderr.startswith("error: ") and message in out.stderr
    assert "Traceback" not in out.output
    assert path.read_bytes() == before
    assert world.group() == {}


def test_a_missing_dynamodb_table_points_at_state_init(world: World) -> None:
    world.clock = VirtualClock(start=time.time() - 3600)
    path = world.write(fleet_spec(desired=2) + "state: {backend: dynamodb, table: nowhere}\n")
    Sandbox.attach(world.url).seed(load_spec([path]))
    out = cli(world, "apply", "-f", str(path), "--yes")
    assert out.exit_code == 1, out.output
    assert "state init" in out.stderr and "nowhere" in out.stderr
    assert world.group() == {}
