"""``apply`` killed with SIGKILL at step boundaries and at random moments, then run again.

Each scenario is its own project on the emulator (so scenarios run side by side): release 1 is
rolled out, then ``apply`` for release 2 runs as a real process with a 3 s lease and is killed
when its journal reaches a given entry, or after a random delay (fixed seed). ``apply`` runs
again (it waits for the dead process's lease) and must resume the rollout, or roll it back
with ``--abort-unfinished``. Afterwards: the rollout completed (or was rolled back); no
instance, group or launch template version of the killed run is left behind; the instances
that serve (in service and registered in the target group, polled from AWS all along) never
fell below the fleet's 4; and the state store agrees with AWS.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from immutable_sdk.plugin import TAG_FLEET, TAG_PROJECT, TAG_RELEASE

from .conftest import AMI_V1, AMI_V2
from .crashkit import (
    CapacityMonitor,
    journal_count,
    kill,
    result_json,
    run,
    seed,
    start,
    wait_for_journal,
    write_spec,
)

pytestmark = pytest.mark.slow

DESIRED = 4
SEED = 20261127


@dataclass(frozen=True)
class Scenario:
    name: str
    entries: int = 0  # kill when the journal holds this many step entries (started/finished)
    delay: float = 0.0  # or this many seconds after the first step started
    abort: bool = False  # then apply --abort-unfinished instead of resuming


_rand = random.Random(SEED)
SCENARIOS = [
    # launch 2, gate, retire 2, launch 2, gate, retire 2: 12 entries, 2 per step
    Scenario("launch-started", entries=1),
    Scenario("launch-finished", entries=2),
    Scenario("gate-started", entries=3),
    Scenario("retire-started", entries=5),
    Scenario("retire-finished", entries=6),
    Scenario("second-gate-finished", entries=10),
    Scenario("last-retire-started", entries=11),
    *(Scenario(f"random-{i}", delay=round(_rand.uniform(0.0, 1.0), 2)) for i in range(3)),
    Scenario("abort-gate-started", entries=3, abort=True),
    Scenario("abort-retire-started", entries=5, abort=True),
    Scenario("abort-random", delay=round(_rand.uniform(0.0, 1.0), 2), abort=True),
]


def play(url: str, root: Path, n: int, scenario: Scenario) -> str | None:
    """Run one scenario; returns None when everything holds, else what went wrong."""
    project = f"k{n}"
    here = root / project
    here.mkdir()
    spec = write_spec(here / "spec.yaml", AMI_V1, project=project)
    first = run(url, spec, "apply", "--yes", "-o", "json")
    if first.returncode != 0:
        return f"release 1 failed: {first.stderr[-2000:]}"
    v1 = result_json(first.stdout)["fleets"][0]["to_release"]
    write_spec(spec, AMI_V2, project=project)
    monitor = CapacityMonitor(url, f"{project}-web")
    db = here / "state.db"
    before = journal_count(db)  # release 1's entries
    with monitor.watching():
        doomed = start(url, spec, "apply", "--yes", "-o", "json", "--lease", "3s")
        # A random moment counts from the rollout's first step (start-up time varies).
        reached = wait_for_journal(doomed, db, before + max(scenario.entries, 1))
        if scenario.entries:
            if not reached:
                return f"the rollout ended before entry {scenario.entries}: {doomed.stderr[-2000:]}"
        elif reached:
            time.sleep(scenario.delay)
        kill(doomed, signal.SIGKILL)
        killed_at = journal_count(db) - before
        unfinished = unfinished_rollouts(db, project)
        again = ["apply", "--yes", "-o", "json", "--wait-for-lock", "30s"]
        if scenario.abort:
            again.append("--abort-unfinished")
        second = run(url, spec, *again)
    where = f"killed at entry {killed_at} ({'an' if unfinished else 'no'} unfinished rollout)"
    if second.returncode != 0:
        return f"{where}: apply again exited {second.returncode}: {second.stderr[-3000:]}"
    fleet = result_json(second.stdout)["fleets"][0]
    # A kill before the rollout was recorded leaves nothing to resume or abort: the next
    # apply simply rolls out. Otherwise it continues (or aborts) that very rollout.
    if scenario.abort and unfinished:
        want = {"outcome": "aborted", "rolled_back_to": v1, "rollout": unfinished[0]}
        release, ami = v1, AMI_V1
    elif unfinished:
        want = {"outcome": "promoted", "rollout": unfinished[0]}
        release, ami = fleet["to_release"], AMI_V2
    else:  # killed before the rollout began (it runs now) or after it ended (nothing to do)
        want = {"outcome": "noop" if killed_at else "promoted"}
        release, ami = fleet["to_release"], AMI_V2
    if {k: fleet[k] for k in want} != want:
        return f"{where}: expected {want}, got {fleet}"
    problems = check_aws(url, project, release, ami, v1)
    problems += check_state(db, project)
    if monitor.samples and min(monitor.samples) < DESIRED:
        problems.append(f"serving capacity fell to {min(monitor.samples)}")
    if not monitor.samples:
        problems.append("the capacity monitor saw nothing")
    return "; ".join(problems) or None


def check_aws(url: str, project: str, release: str, ami: str, v1: str) -> list[str]:
    problems = []
    asg = boto3.client("autoscaling", endpoint_url=url, region_name="us-east-1")
    ec2 = boto3.client("ec2", endpoint_url=url, region_name="us-east-1")
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[f"{project}-web"])[
        "AutoScalingGroups"
    ][0]
    members = [i["InstanceId"] for i in group["Instances"]]
    if (group["MinSize"], group["DesiredCapacity"], group["MaxSize"]) != (4, 4, 8):
        problems.append(f"capacity {group['MinSize']}/{group['DesiredCapacity']}")
    if group.get("SuspendedProcesses"):
        problems.append(f"suspended {group['SuspendedProcesses']}")
    running = ec2.describe_instances(
        Filters=[
            {"Name": f"tag:{TAG_PROJECT}", "Values": [project]},
            {"Name": f"tag:{TAG_FLEET}", "Values": ["web"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )
    instances = {i["InstanceId"]: i for r in running["Reservations"] for i in r["Instances"]}
    if set(instances) != set(members) or len(members) != DESIRED:
        problems.append(f"instances {sorted(instances)} but group members {sorted(members)}")
    for i in instances.values():
        tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
        if (i["ImageId"], tags.get(TAG_RELEASE)) != (ami, release):
            problems.append(f"{i['InstanceId']} runs {i['ImageId']} {tags.get(TAG_RELEASE)}")
    versions = ec2.describe_launch_template_versions(LaunchTemplateName=f"{project}-web")
    releases = sorted(
        t["Value"]
        for v in versions["LaunchTemplateVersions"]
        for s in v["LaunchTemplateData"].get("TagSpecifications", [])[:1]
        for t in s["Tags"]
        if t["Key"] == TAG_RELEASE
    )
    if releases != sorted({v1, release}):
        problems.append(f"launch template versions of releases {releases}")
    return problems


def unfinished_rollouts(db: Path, project: str) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute(
            "SELECT id FROM rollouts WHERE project = ? AND outcome IS NULL", (project,)
        ).fetchall()
    return [r[0] for r in rows]


def check_state(db: Path, project: str) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        unfinished = con.execute(
            "SELECT id FROM rollouts WHERE project = ? AND outcome IS NULL", (project,)
        ).fetchall()
        locks = con.execute("SELECT owner FROM locks WHERE project = ?", (project,)).fetchall()
    problems = []
    if unfinished:
        problems.append(f"unfinished rollouts {unfinished}")
    if locks:
        problems.append(f"locks left {locks}")
    return problems


def test_apply_killed_anywhere_resumes_or_aborts_to_a_clean_fleet(aws: str, tmp_path: Path) -> None:
    seed(aws, write_spec(tmp_path / "seed.yaml", AMI_V1))
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {s.name: pool.submit(play, aws, tmp_path, n, s) for n, s in enumerate(SCENARIOS)}
        failures = {name: f.result() for name, f in futures.items()}
    assert not {k: v for k, v in failures.items() if v}, failures
