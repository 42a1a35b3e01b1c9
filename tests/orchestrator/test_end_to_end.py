"""Issue 17's must-show: a real rollout on Step Functions survives a worker killed mid-tick.

Ten fleets in two waves (a wave bake between them) run release 1; a new image and instance
type make every fleet roll release 2 out, two batches each with a bake (so ticks suspend and
the execution goes through WaitUntil), on three worker processes running the SDK's own
reconcile tick. One worker is killed with SIGKILL while its tick is in a gate of a fleet's
second batch: its health probe is held by the test's HTTP server until the kill, so the kill
lands in the tick for sure (the fleet's lock held by that worker, its tick started and not
answered), with no timing assumption. Then: the execution SUCCEEDED, the killed task was
retried (TaskTimedOut in the history), every group runs release 2 at desired capacity and
never fell under its minimum, each step of each rollout was journaled once, every rollout
finished, no lock is held, and nothing is orphaned (instances, groups, launch template
versions); ``drift`` finds nothing.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from immutable_sdk.clock import RealClock
from immutable_sdk.core.engine import Engine
from immutable_sdk.plugin import TAG_FLEET, TAG_RELEASE
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec
from immutable_sdk.state.base import REPEATABLE_STATUSES, JournalEntry
from immutable_sdk.testing.endpoints import LoopbackHTTPServer

from .conftest import Project

pytestmark = pytest.mark.slow

AMI_V1 = "ami-03c3da4cfa8e8943a"
AMI_V2 = "ami-0d27e0fb3bac4d724"
FLEETS = [f"f{i}" for i in range(10)]
WAVES = [("first", FLEETS[:5], "2s"), ("second", FLEETS[5:], "0s")]
VICTIM = "f1"  # the fleet whose tick is killed (first wave: the rest of the run follows it)
MIN, DESIRED = 2, 2
HEARTBEAT = 5  # seconds: a dead worker's tick is sent again after this (short, yet kept on a
# loaded machine: a worker beats every third of it)
LEASE = 4  # seconds: a dead worker's lock is taken over after this
DEADLINE = 300.0  # seconds for the rollout, however loaded the machine (it takes about 45)


def spec_text(port: int, ami: str, instance_type: str) -> str:
    text = f"""apiVersion: immutable-sdk/v1
name: orc
region: us-east-1
state: {{backend: dynamodb, table: orc-state}}
images:
  app: {{builder: ami, id: {ami}}}
fleets:
"""
    for name in FLEETS:
        text += f"""  {name}:
    image: app
    instance_type: {instance_type}
    subnets: [orc-a]
    security_groups: [orc-web]
    capacity: {{min: {MIN}, desired: {DESIRED}, max: {DESIRED + 1}}}
    strategy: {{type: rolling, batch_size: 1, min_healthy: 100%, max_surge: 1, bake: 1s}}
    health:
      timeout: 2m
      interval: 1s
      checks:
        - {{type: ec2}}
        - type: http
          url: "http://127.0.0.1:{port}/{name}/{{instance_id}}"
          successes: 1
          request_timeout: 60s
"""
    text += "waves:\n"
    for wave, members, bake in WAVES:
        text += f"  - {{name: {wave}, fleets: [{', '.join(members)}], bake: {bake}}}\n"
    return text


class Probes:
    """The fleets' health endpoint: 200 at once, except one probe held until ``release()``.

    Armed for ``fleet``, it holds the first probe of the second distinct instance asked about
    (the second batch's new instance: the first batch's was judged and baked before).
    """

    def __init__(self) -> None:
        self.asked: dict[str, list[str]] = {}
        self.held: tuple[str, str] | None = None
        self.armed: str | None = None
        self._arrived = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fleet, _, instance = self.path.strip("/").partition("/")
                if outer.hold(fleet, instance):
                    outer._release.wait(60)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the worker that asked was killed
                    pass

            def log_message(self, *args: Any) -> None:
                return None

        self.server = LoopbackHTTPServer(Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def arm(self, fleet: str) -> None:
        with self._lock:
            self.armed = fleet
            self.asked.clear()

    def hold(self, fleet: str, instance: str) -> bool:
        with self._lock:
            seen = self.asked.setdefault(fleet, [])
            if instance not in seen:
                seen.append(instance)
            if fleet != self.armed or self.held is not None or seen.index(instance) != 1:
                return False
            self.held = (fleet, instance)
        self._arrived.set()
        return True

    def wait_held(self, timeout: float) -> tuple[str, str]:
        assert self._arrived.wait(timeout), f"no probe of {self.armed}'s second batch arrived"
        assert self.held is not None
        return self.held

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def probes() -> Iterator[Probes]:
    server = Probes()
    yield server
    server.close()


def worker_events(project: Project, n: int) -> list[dict[str, Any]]:
    """The JSON event lines worker ``n`` printed on stderr so far."""
    events = []
    for line in (project.tmp / f"worker-{n}.err").read_text().splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # a line being written
    return events


def ticking(events: list[dict[str, Any]], unit: str) -> bool:
    """Whether the last tick of ``unit`` in ``events`` started and was not answered."""
    mine = [e["event"] for e in events if e.get("unit") == unit and e["event"].startswith("tick.")]
    return bool(mine) and mine[-1] == "tick.started"


def owner_pid(owner: str) -> int:
    """The pid in a lock owner id (``host:pid:random``)."""
    return int(owner.split(":")[-2])


class Watch:
    """Polls the groups while the rollout runs: the fewest in-service instances seen."""

    def __init__(self, project: Project) -> None:
        self.asg = project.client("autoscaling")
        self.fewest: dict[str, int] = {}
        self.looks = 0

    def look(self) -> None:
        groups = self.asg.describe_auto_scaling_groups(
            AutoScalingGroupNames=[f"orc-{f}" for f in FLEETS]
        )["AutoScalingGroups"]
        assert len(groups) == len(FLEETS)
        for group in groups:
            serving = sum(
                1
                for i in group["Instances"]
                if i["LifecycleState"] == "InService" and i["HealthStatus"] == "Healthy"
            )
            name = group["AutoScalingGroupName"]
            self.fewest[name] = min(serving, self.fewest.get(name, serving))
        self.looks += 1


def poll_until(
    done: Callable[[], bool], timeout: float, what: str, during: Callable[[], None]
) -> None:
    clock = RealClock()
    deadline = clock.monotonic() + timeout
    while not done():
        assert clock.monotonic() < deadline, f"timed out after {timeout:g}s: {what}"
        during()
        clock.sleep(0.5)


def test_a_worker_killed_mid_tick_loses_nothing(project: Project, probes: Probes) -> None:
    project.write(spec_text(probes.port, AMI_V1, "t3.micro"), {})
    Sandbox.attach(project.url).seed(load_spec([project.spec]))
    project.install("--heartbeat", f"{HEARTBEAT}s")
    # release 1 everywhere, in process
    first = project.cli("apply", "-f", str(project.spec), "--yes", "-o", "json")
    assert first.exit_code == 0, first.output
    ec2 = project.client("ec2")
    launched_before = {f: len(instances_of(ec2, f)) for f in FLEETS}
    assert launched_before == dict.fromkeys(FLEETS, DESIRED)
    releases_1 = group_releases(project)

    # release 2: a new image and instance type, rolled out by three workers
    project.write(spec_text(probes.port, AMI_V2, "t3.small"), {})
    probes.arm(VICTIM)
    # a wave's five units tick at once; the two workers left after the kill have room for eight
    # (a Tick waiting in the queue for a free worker counts against its heartbeat, and a tick
    # whose task timed out on a loaded machine keeps its place until it ends)
    options = ("--concurrency", "4", "--lease", f"{LEASE}s", "--log-format", "json")
    workers = [project.worker(*options, tick=None) for _ in range(3)]
    applied = project.cli(
        "apply", "-f", str(project.spec), "--yes", "--on", "step-functions", "-o", "json"
    )
    assert applied.exit_code == 0, applied.output
    arn = json.loads(applied.stdout)["execution_arn"]
    watch = Watch(project)

    # the kill: the victim's second-batch probe is held, so its tick is in a gate, holding
    # the fleet's lock; find whose it is, check that worker's tick is open, kill it
    poll_until(lambda: probes.held is not None, DEADLINE, "the victim's probe", watch.look)
    held_fleet, held_instance = probes.wait_held(0)
    assert held_fleet == VICTIM
    with Engine(load_spec([project.spec]), endpoint_url=project.url) as engine:
        lock = engine.state.get_lock(VICTIM)
        assert lock is not None, "the held probe's tick holds no lock"
        pids = [w.pid for w in workers]
        assert owner_pid(lock.owner) in pids, (lock.owner, pids)
        victim = pids.index(owner_pid(lock.owner))
        rollout = engine.state.unfinished_rollout(VICTIM)
        assert rollout is not None
        assert open_steps(engine.state.journal(rollout.id)), "the tick is between two steps"
        poll_until(
            lambda: ticking(worker_events(project, victim), VICTIM),
            30,
            "the tick's start in the worker's events",
            lambda: None,
        )
        os.kill(workers[victim].pid, signal.SIGKILL)
        assert workers[victim].wait(timeout=30) == -signal.SIGKILL
        probes.release()

        def finished() -> bool:
            found = project.aws.describe_execution(arn)
            assert found is not None
            return found["status"] != "RUNNING"

        poll_until(finished, DEADLINE, f"the execution: {project.logs()}", watch.look)
        done = project.aws.describe_execution(arn)
        assert done is not None
        history = project.aws.history(arn)
        (project.tmp / "history.json").write_text(json.dumps(history, default=str, indent=1))
        assert done["status"] == "SUCCEEDED", (failures(history), project.logs())
        watch.look()

        # the killed tick was retried: its task timed out and the unit was ticked again
        assert retried_units(history) >= {VICTIM}
        # the batches' bakes suspended ticks: units waited in WaitUntil for their next_at
        waits = [e for e in history if e["type"] == "WaitStateEntered"]
        assert any(e["stateEnteredEventDetails"]["name"] == "WaitUntil" for e in waits)

        # every fleet runs release 2 at desired capacity, and never served under its minimum
        releases_2 = group_releases(project)
        for fleet in FLEETS:
            assert releases_2[fleet] != releases_1[fleet]
            assert watch.fewest[f"orc-{fleet}"] >= MIN, (fleet, watch.fewest)
        assert watch.looks > 5
        check_groups(project, releases_2)

        # each step journaled once; every rollout finished; no lock held
        state = engine.state
        for fleet in FLEETS:
            assert state.get_lock(fleet) is None, fleet
            assert state.unfinished_rollout(fleet) is None, fleet
            rollouts = state.rollouts(fleet)
            assert [r.to_release for r in rollouts] == [releases_2[fleet], releases_1[fleet]]
            for record in rollouts:
                assert record.outcome in ("promoted", "created"), (fleet, record)
                check_journal(state.journal(record.id), len(record.steps), fleet)

    # nothing orphaned: no instance outside its group, each batch launched once
    for fleet in FLEETS:
        instances = instances_of(ec2, fleet)
        alive = {i["InstanceId"] for i in instances if i["State"]["Name"] != "terminated"}
        assert alive == members_of(project, fleet), fleet
        assert len(instances) == 2 * DESIRED, (fleet, "a batch launched twice")
    # the instance the killed tick launched and was judging is serving: the tick asked again
    # went on with it, it did not launch the batch again
    assert held_instance in members_of(project, VICTIM)
    drift = project.cli("drift", "-f", str(project.spec), "-o", "json")
    assert drift.exit_code == 0, drift.output
    assert project.stop_workers() == [0 if n != victim else -signal.SIGKILL for n in range(3)]


def instances_of(ec2: Any, fleet: str) -> list[dict[str, Any]]:
    """Every instance ever launched for ``fleet`` (terminated ones included)."""
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": f"tag:{TAG_FLEET}", "Values": [fleet]}]
    )
    return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]


def members_of(project: Project, fleet: str) -> set[str]:
    (group,) = project.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[f"orc-{fleet}"]
    )["AutoScalingGroups"]
    return {i["InstanceId"] for i in group["Instances"]}


def group_releases(project: Project) -> dict[str, str]:
    groups = project.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    found = {}
    for group in groups:
        tags = {t["Key"]: t["Value"] for t in group["Tags"]}
        found[tags[TAG_FLEET]] = tags[TAG_RELEASE]
    assert sorted(found) == sorted(FLEETS), "a group too many or too few"
    return found


def check_groups(project: Project, releases: dict[str, str]) -> None:
    """Each group: desired capacity, every member on ``releases`` (AMI, type, tag), and its
    launch template holds release 1 and 2's versions only, release 2's the group's."""
    asg = project.client("autoscaling")
    ec2 = project.client("ec2")
    for fleet in FLEETS:
        (group,) = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[f"orc-{fleet}"])[
            "AutoScalingGroups"
        ]
        assert group["DesiredCapacity"] == DESIRED, fleet
        assert len(group["Instances"]) == DESIRED, fleet
        assert all(i["LifecycleState"] == "InService" for i in group["Instances"])
        ids = [i["InstanceId"] for i in group["Instances"]]
        reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
        for inst in (i for r in reservations for i in r["Instances"]):
            tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
            assert (inst["ImageId"], inst["InstanceType"], tags[TAG_RELEASE]) == (
                AMI_V2,
                "t3.small",
                releases[fleet],
            ), fleet
        template = group["LaunchTemplate"]
        versions = ec2.describe_launch_template_versions(
            LaunchTemplateName=template["LaunchTemplateName"]
        )["LaunchTemplateVersions"]
        described = Counter(v["VersionDescription"] for v in versions)
        assert len(versions) == 2 and max(described.values()) == 1, (fleet, described)
        mine = [v for v in versions if v["VersionDescription"] == f"release {releases[fleet]}"]
        assert len(mine) == 1, (fleet, described)
        assert template["Version"] in (str(mine[0]["VersionNumber"]), "$Default"), template
        if template["Version"] == "$Default":
            assert mine[0]["DefaultVersion"], fleet
        assert mine[0]["LaunchTemplateData"]["ImageId"] == AMI_V2


def open_steps(entries: list[Any]) -> set[int]:
    """The steps journaled as started and not (yet) as finished or failed."""
    started = {e.step_index for e in entries if e.status == "started" and e.step_index >= 0}
    ended = {e.step_index for e in entries if e.status in ("finished", "failed")}
    return started - ended


def check_journal(entries: list[Any], steps: int, fleet: str) -> None:
    """No transition journaled twice; every step that started finished; every planned step
    ran, except those a take-over re-planned.

    A tick killed between two steps, or inside one that changes AWS (a launch, a retire),
    leaves its rollout to the next tick, which journals ``resumed``, repairs the group from
    what AWS runs and plans the rest again: the new steps are appended to the rollout's list
    after the old ones (``Carried.next_index``), and the old steps the killed tick never
    began are never run. A tick killed inside a wait (a gate, a bake) goes on with the same
    steps (``continued``): then every step runs."""
    transitions = Counter(
        (e.step_index, e.status) for e in entries if e.status not in REPEATABLE_STATUSES
    )
    # on failure, the whole journal: seq, step, status, writer's epoch, and a note's kind
    journal = [(e.seq, e.step_index, e.status, e.epoch, e.data.get("note")) for e in entries]
    twice = {k: n for k, n in transitions.items() if n > 1}
    assert not twice, (fleet, twice, journal)
    started = {i for i, status in transitions if status == "started" and i >= 0}
    finished = {i for i, status in transitions if status == "finished" and i >= 0}
    assert started == finished, (fleet, journal)
    assert not [k for k in transitions if k[1] == "failed"], (fleet, journal)
    resumed = [e.seq for e in entries if e.status == "note" and e.data.get("note") == "resumed"]
    replanned_from = min(
        (
            e.step_index
            for e in entries
            if resumed and e.seq > resumed[0] and e.status == "started" and e.step_index >= 0
        ),
        default=0,
    )
    for index in range(steps):
        if index not in started:  # only an old step that a take-over re-planned
            assert resumed and index < replanned_from, (fleet, index, journal)
    assert steps - 1 in started, (fleet, journal)  # the rollout ran to its last step


def test_the_journal_check_allows_only_the_steps_a_take_over_re_planned() -> None:
    def journal(*rows: tuple[int, str] | str) -> list[JournalEntry]:
        out = []
        for seq, row in enumerate(rows, 1):
            index, status = (-1, "note") if isinstance(row, str) else row
            data = {"note": row} if isinstance(row, str) else {}
            out.append(JournalEntry("ro-1", seq, index, status, 0.0, data))
        return out

    def ran(*indices: int) -> list[tuple[int, str]]:
        return [(i, s) for i in indices for s in ("started", "finished")]

    check_journal(journal(*ran(0, 1, 2)), 3, "every step ran")
    check_journal(journal(*ran(0), "continued", *ran(1, 2)), 3, "a wait went on")
    # killed after step 0: steps 1 and 2 were re-planned as steps 3 and 4
    check_journal(journal(*ran(0), "resumed", *ran(3, 4)), 5, "re-planned")
    with pytest.raises(AssertionError):  # a step skipped with no take-over
        check_journal(journal(*ran(0, 2)), 3, "skipped")
    with pytest.raises(AssertionError):  # a re-planned step that never ran
        check_journal(journal(*ran(0), "resumed", *ran(3)), 5, "re-planned, not run")
    with pytest.raises(AssertionError):  # a step started and never finished
        check_journal(journal(*ran(0), (1, "started"), *ran(2)), 3, "unfinished")
    with pytest.raises(AssertionError):  # a transition journaled twice
        check_journal(journal(*ran(0, 0, 1)), 2, "twice")


def retried_units(history: list[dict[str, Any]]) -> set[str]:
    """Units whose Tick task timed out (a worker stopped heartbeating) and was sent again."""
    by_id = {e["id"]: e for e in history}

    def unit(event: dict[str, Any]) -> str:
        details = event["taskScheduledEventDetails"]
        return str(json.loads(details["parameters"])["MessageBody"]["unit"]["key"])

    scheduled = [(e["id"], unit(e)) for e in history if e["type"] == "TaskScheduled"]
    units = set()
    for event in history:
        if event["type"] != "TaskTimedOut":
            continue
        previous = by_id.get(event.get("previousEventId"))
        while previous is not None and previous["type"] != "TaskScheduled":
            previous = by_id.get(previous.get("previousEventId"))
        if previous is None:
            continue
        key = unit(previous)
        if any(n > event["id"] and k == key for n, k in scheduled):
            units.add(key)
    return units


def failures(history: list[dict[str, Any]]) -> list[str]:
    """The history's failures and timeouts, one line each (for an assertion's message)."""
    lines = []
    for event in history:
        if "Fail" in event["type"] or "TimedOut" in event["type"] or "Abort" in event["type"]:
            details = {k: v for k, v in event.items() if k.endswith("Details")}
            lines.append(f"{event['id']} {event['type']} {json.dumps(details, default=str)[:400]}")
    return lines
