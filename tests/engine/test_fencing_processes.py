"""Two writers after ``unlock --force``, with real ``apply`` processes on the moto server.

A rolls the fleet out; mid-rollout a person force-unlocks the fleet and B applies, taking the
rollout over. Exactly one of them finishes it: B. A stops at its next state write or AWS
change with exit code 3 and writes nothing after the unlock (its journal entries carry its
lock epoch; none comes after B's first), and no instance that left the group stays
registered in the target group. On SQLite and on DynamoDB, with A running through the unlock
(it sleeps in a pause between batches) and with A stopped (SIGSTOP) and woken while B runs.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from immutable_sdk.state.base import JournalEntry, StateStore
from immutable_sdk.state.dynamodb import DynamoDbStateStore
from immutable_sdk.state.sqlite import SqliteStateStore

from .conftest import AMI_V1, AMI_V2
from .crashkit import Process, result_json, run, seed, start, write_spec
from .test_lock_processes import stop_outside_a_transaction

pytestmark = pytest.mark.slow

TABLE = "shop-state"
BATCHES = "strategy: {type: rolling, batch_size: 2, min_healthy: 100%}"
PAUSED = "strategy: {type: rolling, batch_size: 2, min_healthy: 100%, pause: 6s}"


def client(url: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1")


def write(path: Path, ami: str, state: str, paused: bool) -> Path:
    write_spec(path, ami, state=state)
    if paused:
        path.write_text(path.read_text().replace(BATCHES, PAUSED))
    return path


def wait_until(what: str, ready: Callable[[], bool], *procs: Process, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        for p in procs:
            assert p.poll() is None, f"{what}: the process ended first\n{p.stderr[-3000:]}"
        time.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout}s")


def registered_targets(url: str) -> set[str]:
    elbv2 = client(url, "elbv2")
    found: set[str] = set()
    for tg in elbv2.describe_target_groups()["TargetGroups"]:
        health = elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])
        found |= {d["Target"]["Id"] for d in health["TargetHealthDescriptions"]}
    return found


def running_instances(url: str) -> dict[str, str]:
    """Instance id -> AMI of every pending or running instance."""
    reservations = client(url, "ec2").describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]
    return {i["InstanceId"]: i["ImageId"] for r in reservations for i in r["Instances"]}


@pytest.mark.parametrize("holder", ["running", "stopped"])
@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
def test_force_unlock_mid_rollout_leaves_exactly_one_writer(
    aws: str, tmp_path: Path, backend: str, holder: str
) -> None:
    paused = holder == "running"
    if backend == "sqlite":
        state = "{backend: local, path: state.db}"
    else:
        state = f"{{backend: dynamodb, table: {TABLE}}}"
    spec = write(tmp_path / "spec.yaml", AMI_V1, state, paused)
    seed(aws, spec)
    if backend == "dynamodb":
        assert run(aws, spec, "state", "init").returncode == 0
    first = run(aws, spec, "apply", "--yes", "-o", "json")
    assert first.returncode == 0, first.stderr[-3000:]

    def open_store() -> StateStore:
        if backend == "sqlite":
            return SqliteStateStore(tmp_path / "state.db", "shop")
        return DynamoDbStateStore(client(aws, "dynamodb"), TABLE, "shop")

    store = open_store()

    def journal() -> list[JournalEntry]:
        pending = store.unfinished_rollout("web")
        return store.journal(pending.id) if pending else []

    write(spec, AMI_V2, state, paused)
    a = start(aws, spec, "apply", "--yes", "-o", "json")
    if paused:  # A sleeps between its batches, running and holding a valid lease
        wait_until(
            "A's pause started",
            lambda: any(e.data.get("kind") == "pause" and e.status == "started" for e in journal()),
            a,
        )
    else:  # A is stopped in its first gate
        wait_until("A's first gate", lambda: sum(e.step_index >= 0 for e in journal()) >= 3, a)
        if backend == "sqlite":
            stop_outside_a_transaction(a, tmp_path / "state.db")
        else:
            a.send_signal(signal.SIGSTOP)
    try:
        [rollout] = [r.id for r in store.rollouts("web") if r.outcome is None]
        unlock = run(aws, spec, "unlock", "--fleet", "web", "--force", "--yes", "-o", "json")
        assert unlock.returncode == 0, unlock.stderr[-3000:]
        removed = result_json(unlock.stdout)["removed"]
        assert removed["owner"] and removed["epoch"] >= 1
        old_epoch = removed["epoch"]
        written_by_a = [e for e in store.journal(rollout) if e.epoch == old_epoch]
        assert written_by_a  # A had journaled its steps under its epoch
        b = start(aws, spec, "apply", "--yes", "-o", "json")
        if not paused:  # wake A while B is rolling the fleet out
            wait_until(
                "B took the rollout over",
                lambda: any((e.epoch or 0) > old_epoch for e in store.journal(rollout)),
                b,
            )
    finally:
        a.send_signal(signal.SIGCONT)
    code_a, code_b = a.wait(timeout=180), b.wait(timeout=180)

    assert code_b == 0, b.stderr[-3000:]
    assert code_a == 3, a.stderr[-3000:]
    [fleet_b] = result_json(b.stdout)["fleets"]
    assert (fleet_b["outcome"], fleet_b["rollout"]) == ("promoted", rollout)
    [fleet_a] = result_json(a.stdout)["fleets"]
    assert fleet_a["outcome"] == "lock_lost"
    assert "no longer held by" in fleet_a["error"] and f"epoch {old_epoch}" in fleet_a["error"]
    assert "Traceback" not in a.stderr + b.stderr

    # The journal: A's entries all come before B's; A wrote none after the unlock.
    entries = store.journal(rollout)
    epochs = [e.epoch for e in entries]
    new_epochs = {e for e in epochs if e != old_epoch}
    assert len(new_epochs) == 1 and min(new_epochs) > old_epoch, epochs  # type: ignore[operator]
    first_b = next(i for i, e in enumerate(epochs) if e != old_epoch)
    assert old_epoch not in epochs[first_b:], epochs
    assert [e for e in entries if e.epoch == old_epoch] == written_by_a

    # State and AWS agree: one promoted rollout, no lock, the fleet on v2, nothing stale.
    assert store.get_lock("web") is None and store.unfinished_rollout("web") is None
    assert store.get_rollout(rollout).outcome == "promoted"  # type: ignore[union-attr]
    group = client(aws, "autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["shop-web"]
    )["AutoScalingGroups"][0]
    members = {i["InstanceId"] for i in group["Instances"]}
    assert len(members) == group["DesiredCapacity"] == 4
    assert group.get("SuspendedProcesses", []) == []
    assert running_instances(aws) == {i: AMI_V2 for i in members}  # nothing left outside
    assert registered_targets(aws) == members  # no terminated or detached target left
