"""Locks and signals between real ``apply`` processes: eight at once on the DynamoDB backend,
a holder stopped (SIGSTOP) past its lease, SIGINT once and twice."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from immutable_sdk.state.dynamodb import DynamoDbStateStore

from .conftest import AMI_V1, AMI_V2
from .crashkit import (
    Process,
    journal_count,
    result_json,
    run,
    seed,
    start,
    wait_for_journal,
    write_spec,
)

pytestmark = pytest.mark.slow

TABLE = "shop-state"


def client(url: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1")


@pytest.mark.parametrize("wait", [False, True], ids=["exit-3", "wait-for-lock"])
def test_eight_applies_at_once_roll_each_fleet_out_exactly_once(
    aws: str, tmp_path: Path, wait: bool
) -> None:
    spec = write_spec(
        tmp_path / "spec.yaml",
        AMI_V1,
        fleets=("web", "api"),
        desired=2,
        state=f"{{backend: dynamodb, table: {TABLE}}}",
    )
    seed(aws, spec)
    init = run(aws, spec, "state", "init")
    assert init.returncode == 0, init.stderr
    args = ["apply", "--yes", "-o", "json"] + (["--wait-for-lock", "90s"] if wait else [])
    procs = [start(aws, spec, *args) for _ in range(8)]
    codes = [p.wait(timeout=240) for p in procs]
    results = [result_json(p.stdout) for p in procs]
    if wait:
        assert codes == [0] * 8, [p.stderr[-1500:] for p in procs]
    else:
        assert set(codes) <= {0, 3} and 3 in codes, codes
    state = DynamoDbStateStore(client(aws, "dynamodb"), TABLE, "shop")
    for name in ("web", "api"):
        outcomes = [f["outcome"] for r in results for f in r["fleets"] if f["fleet"] == name]
        assert outcomes.count("promoted") == 1, outcomes
        others = set(outcomes) - {"promoted"}
        assert others <= ({"noop"} if wait else {"noop", "locked"}), outcomes
        rollouts = state.rollouts(name)
        assert [r.outcome for r in rollouts] == ["promoted"], rollouts
        assert state.get_lock(name) is None
        group = client(aws, "autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[f"shop-{name}"]
        )["AutoScalingGroups"][0]
        assert len(group["Instances"]) == 2
        versions = client(aws, "ec2").describe_launch_template_versions(
            LaunchTemplateName=f"shop-{name}"
        )["LaunchTemplateVersions"]
        assert len(versions) == 1
    running = client(aws, "ec2").describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )
    assert sum(len(r["Instances"]) for r in running["Reservations"]) == 4
    if not wait:  # the ones turned away name the holder, since when and until when
        locked = [f["error"] for r in results for f in r["fleets"] if f["outcome"] == "locked"]
        assert locked and all(
            "is locked by" in e and "since" in e and "lease expires" in e for e in locked
        )


def deployed(aws: str, tmp_path: Path) -> tuple[Path, Path]:
    spec = write_spec(tmp_path / "spec.yaml", AMI_V1)
    seed(aws, spec)
    first = run(aws, spec, "apply", "--yes", "-o", "json")
    assert first.returncode == 0, first.stderr[-2000:]
    write_spec(spec, AMI_V2)
    return spec, tmp_path / "state.db"


def unfinished(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return [r[0] for r in con.execute("SELECT id FROM rollouts WHERE outcome IS NULL")]


def lock_owner(db: Path) -> str | None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        row = con.execute("SELECT owner FROM locks").fetchone()
    return None if row is None else str(row[0])


def journal_of(db: Path, rollout: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute(
            "SELECT seq, step_index, status, data FROM journal WHERE rollout = ? ORDER BY seq",
            (rollout,),
        ).fetchall()


def stop_outside_a_transaction(proc: Process, db: Path) -> None:
    """SIGSTOP, but never while the process holds SQLite's write lock (others would wait)."""
    for _ in range(100):
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.05)
        con = sqlite3.connect(db, timeout=0.2, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        finally:
            con.close()
    raise AssertionError("the process never left its state transaction")


def aws_state(url: str) -> dict[str, Any]:
    """What a rollout can change: the group, every instance and the template versions."""
    group = client(url, "autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    instances = client(url, "ec2").describe_instances()["Reservations"]
    versions = client(url, "ec2").describe_launch_template_versions(LaunchTemplateName="shop-web")[
        "LaunchTemplateVersions"
    ]
    return json.loads(
        json.dumps(
            {
                "groups": [
                    {k: g.get(k) for k in ("MinSize", "DesiredCapacity", "MaxSize", "Tags")}
                    | {
                        "instances": sorted(i["InstanceId"] for i in g["Instances"]),
                        "suspended": g.get("SuspendedProcesses"),
                        "template": g.get("LaunchTemplate"),
                    }
                    for g in group
                ],
                "instances": sorted(
                    (i["InstanceId"], i["State"]["Name"]) for r in instances for i in r["Instances"]
                ),
                "versions": sorted(v["VersionNumber"] for v in versions),
            },
            default=str,
        )
    )


def test_a_holder_stopped_past_its_lease_loses_the_lock_and_touches_nothing(
    aws: str, tmp_path: Path
) -> None:
    spec, db = deployed(aws, tmp_path)
    before = journal_count(db)
    a = start(aws, spec, "apply", "--yes", "-o", "json", "--lease", "3s")
    assert wait_for_journal(a, db, before + 3)  # its first gate started
    stop_outside_a_transaction(a, db)
    try:
        [rollout] = unfinished(db)
        time.sleep(3.5)  # the lease expires while A sleeps
        b = run(aws, spec, "apply", "--yes", "-o", "json", "--lease", "3s")
        assert b.returncode == 0, b.stderr[-3000:]
        fleet = result_json(b.stdout)["fleets"][0]
        assert (fleet["outcome"], fleet["rollout"]) == ("promoted", rollout)  # B resumed it
        after_b = aws_state(aws)
        journal_after_b = journal_of(db, rollout)
    finally:
        a.send_signal(signal.SIGCONT)
    code = a.wait(timeout=60)
    assert code == 3, a.stderr[-3000:]
    outcome = result_json(a.stdout)["fleets"][0]
    assert outcome["outcome"] == "lock_lost"
    assert "no longer held" in outcome["error"]
    assert aws_state(aws) == after_b  # A changed nothing in AWS after it woke
    assert journal_of(db, rollout) == journal_after_b  # nor in the journal
    assert lock_owner(db) is None and unfinished(db) == []


def test_sigint_stops_at_a_safe_point_releases_the_lock_and_apply_resumes(
    aws: str, tmp_path: Path
) -> None:
    spec, db = deployed(aws, tmp_path)
    before = journal_count(db)
    a = start(aws, spec, "apply", "--yes", "-o", "json")  # the default 60 s lease
    assert wait_for_journal(a, db, before + 3)
    a.send_signal(signal.SIGINT)
    assert a.wait(timeout=30) == 130, a.stderr[-3000:]
    assert "stopping at the next safe point" in a.stderr
    assert "run apply again to resume it" in a.stderr
    [rollout] = unfinished(db)
    assert lock_owner(db) is None  # released: the next apply need not wait for the lease
    notes = [json.loads(e[3]) for e in journal_of(db, rollout) if e[2] == "note"]
    assert any(n.get("note") == "interrupted" and "SIGINT" in n["reason"] for n in notes)
    b = run(aws, spec, "apply", "--yes", "-o", "json")
    assert b.returncode == 0, b.stderr[-3000:]
    fleet = result_json(b.stdout)["fleets"][0]
    assert (fleet["outcome"], fleet["rollout"]) == ("promoted", rollout)
    assert unfinished(db) == [] and lock_owner(db) is None


SECOND_SIGNAL = """
import os, signal, sys, time
from immutable_sdk.cli.interrupts import stop_on_signals
from immutable_sdk.core.stopping import StopRequest

stop = StopRequest()
with stop_on_signals(stop):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)
    print("stop requested:", stop.requested, stop.reason, flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
    print("still running", flush=True)
"""


def test_a_second_signal_ends_the_process_at_once() -> None:
    """Fleets roll out on worker threads, so a second signal cannot wait for a safe point:
    it ends the process (exit 130) without running anything else; the lock stays until its
    lease expires and the next apply resumes (the crash tests cover that resumption)."""
    import subprocess
    import sys

    from .crashkit import environ

    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", SECOND_SIGNAL],
        capture_output=True,
        text=True,
        env=environ(),
        timeout=30,
    )
    assert out.returncode == 130, out
    assert "stop requested: True SIGTERM" in out.stdout
    assert "still running" not in out.stdout
    assert "SIGTERM: stopping at the next safe point" in out.stderr
    assert "SIGINT again: exiting at once" in out.stderr
    assert time.monotonic() - started < 4
