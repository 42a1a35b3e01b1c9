"""Running ``immutable-sdk apply`` as a real process against the emulator, and killing it.

The tests here use the real clock (a subprocess cannot share a virtual one), so the spec keeps
every wait short: health checks every second, no pause, a fleet of 4 in batches of 2.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

import immutable_sdk
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec

SRC = str(Path(immutable_sdk.__file__).resolve().parents[1])  # the SDK under test

SPEC = """\
apiVersion: immutable-sdk/v1
name: {project}
region: us-east-1
state: {state}
images:
  web:
    builder: ami
    id: {ami}
fleets:
{fleets}
"""

FLEET = """\
  {name}:
    image: web
    instance_type: {instance_type}
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {{min: {desired}, desired: {desired}, max: {max}}}
    load_balancer: {{target_groups: [shop-web]}}
    strategy: {{type: rolling, batch_size: 2, min_healthy: 100%}}
    health:
      timeout: 30s
      interval: 1s
      checks:
        - {{type: ec2}}
        - {{type: elb}}
    rollback: {{automatic: true}}
"""


def write_spec(
    path: Path,
    ami: str,
    *,
    project: str = "shop",
    fleets: tuple[str, ...] = ("web",),
    desired: int = 4,
    state: str = "{backend: local, path: state.db}",
    instance_type: str = "t3.micro",
) -> Path:
    blocks = "".join(
        FLEET.format(name=f, desired=desired, max=desired * 2, instance_type=instance_type)
        for f in fleets
    )
    path.write_text(SPEC.format(project=project, state=state, ami=ami, fleets=blocks))
    return path


def seed(url: str, spec: Path) -> None:
    """Create the network, target group... the spec names (as ``--sandbox`` would)."""
    Sandbox.attach(url).seed(load_spec([spec]))
    # moto answers a deregistration at once; keep real AWS's 300 s out of the tests anyway.
    elbv2 = boto3.client("elbv2", endpoint_url=url, region_name="us-east-1")
    for tg in elbv2.describe_target_groups()["TargetGroups"]:
        elbv2.modify_target_group_attributes(
            TargetGroupArn=tg["TargetGroupArn"],
            Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "0"}],
        )


def command(url: str, spec: Path, *args: str) -> list[str]:
    """``immutable-sdk ... <command words> -f SPEC <options>`` for ``args`` = words + options."""
    words = 0
    while words < len(args) and not args[words].startswith("-"):
        words += 1
    return [
        sys.executable,
        "-m",
        "immutable_sdk",
        "--endpoint-url",
        url,
        "--log-format",
        "json",
        *args[:words],
        "-f",
        str(spec),
        *args[words:],
    ]


def environ() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Process:
    """A running apply whose output goes to files (a pipe nobody reads would stall it)."""

    _n = 0

    def __init__(self, url: str, spec: Path, *args: str) -> None:
        Process._n += 1
        self.out = spec.parent / f"run-{os.getpid()}-{Process._n}.out"
        self.err = self.out.with_suffix(".err")
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                command(url, spec, *args), cwd=spec.parent, env=environ(), stdout=out, stderr=err
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout=timeout)

    @property
    def stdout(self) -> str:
        return self.out.read_text()

    @property
    def stderr(self) -> str:
        return self.err.read_text()


def start(url: str, spec: Path, *args: str) -> Process:
    return Process(url, spec, *args)


def run(url: str, spec: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(url, spec, *args),
        cwd=spec.parent,
        env=environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def result_json(stdout: str) -> dict[str, Any]:
    """The ``--output json`` result (events go to stderr: stdout holds only the result)."""
    try:
        data: dict[str, Any] = json.loads(stdout)
    except ValueError:
        raise AssertionError(f"no JSON result in {stdout!r}") from None
    return data


def events(stderr: str) -> list[dict[str, Any]]:
    """The events an apply printed (``--log-format json``: one JSON object a line)."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a kill
    return out


def journal_count(db: Path, statuses: tuple[str, ...] = ("started", "finished")) -> int:
    """Journal entries with ``statuses`` written so far (read-only, never blocks the writer)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            marks = ",".join("?" * len(statuses))
            row = con.execute(
                f"SELECT COUNT(*) FROM journal WHERE step_index >= 0 AND status IN ({marks})",
                statuses,
            ).fetchone()
            return int(row[0])
    except sqlite3.OperationalError:  # the tables do not exist yet
        return 0


def wait_for_journal(proc: Process, db: Path, count: int, timeout: float = 60) -> bool:
    """Poll until the journal holds ``count`` step entries; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal_count(db) >= count:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    raise AssertionError(f"the journal never reached {count} entries")


def kill(proc: Process, sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(timeout=60)


class CapacityMonitor:
    """Polls AWS on its own thread: instances of the fleet's group that are in service and
    registered in its target group, the capacity that serves traffic. Records the minimum."""

    def __init__(self, url: str, group: str = "shop-web") -> None:
        self.asg = boto3.client("autoscaling", endpoint_url=url, region_name="us-east-1")
        self.elbv2 = boto3.client("elbv2", endpoint_url=url, region_name="us-east-1")
        self.group = group
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int | None:
        groups = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[self.group])
        if not groups["AutoScalingGroups"]:
            return None
        g = groups["AutoScalingGroups"][0]
        members = {i["InstanceId"] for i in g["Instances"] if i["LifecycleState"] == "InService"}
        registered: set[str] = set()
        for tg in g.get("TargetGroupARNs", []):
            health = self.elbv2.describe_target_health(TargetGroupArn=tg)
            registered |= {
                d["Target"]["Id"]
                for d in health["TargetHealthDescriptions"]
                if d["TargetHealth"]["State"] == "healthy"
            }
        return len(members & registered)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = self.sample()
            if value is not None:
                self.samples.append(value)
            self._stop.wait(0.02)

    @contextmanager
    def watching(self) -> Iterator[CapacityMonitor]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=10)
