"""A unit that fails on Step Functions, with workers running the SDK's own reconcile tick.

Two fleets roll out side by side in the first wave, a third waits in the second. The first
wave's ``api`` fails its gate (an ``http`` check against a server the test controls answers
500): it rolls back to its previous release, and only then its branch ends; ``web`` beside it
is not stopped, it converges; ``jobs`` is never touched; the execution fails naming ``api``
and the gate's reason, and nothing is left behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from tests.engine.conftest import AMI_V1, AMI_V2, HealthServer

from immutable_sdk.core.engine import Engine
from immutable_sdk.core.orchestrator.reconcile_tick import ReconcileTick, answer_of
from immutable_sdk.core.orchestrator.watch import unit_states
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec

from .conftest import Project
from .test_tick import request

pytestmark = pytest.mark.slow


def test_a_rollback_that_waits_is_not_the_end_of_the_unit() -> None:
    """A tick whose rollback waits (a canary's DNS TTL) answers progressing; the tick that
    finished the rollback answers failed, with the failure that started it."""
    ttl = {"state": "failed", "outcome": "rolling_back", "waiting_for": "ttl", "next_at": 1e9}
    waiting = answer_of({"units": {"web": {**ttl, "error": "bake: alarm checkout-5xx"}}}, "web")
    assert waiting.state == "progressing" and waiting.next_at == "2001-09-09T01:46:40Z"
    assert waiting.reason == "rolling back, waiting for ttl: bake: alarm checkout-5xx"
    unlimited = {**ttl, "next_at": None}
    assert answer_of({"units": {"web": unlimited}}, "web").state == "waiting"
    ticks = iter(
        [
            {"units": {"web": ttl}},
            {"units": {"web": {"state": "failed", "outcome": "rolled_back", "rollout": "r-2"}}},
        ]
    )

    class Engine:
        def reconcile(self, **_kwargs: Any) -> Any:
            return next(ticks)

        def history(self, fleet: str | None = None, limit: int = 20) -> dict[str, Any]:
            rollouts = [
                {"id": "r-2", "outcome": "rolled_back", "error": "bake: alarm checkout-5xx"},
                {"id": "r-1", "outcome": "promoted", "error": None},
            ]
            return {"web": {"releases": [], "rollouts": rollouts}}

    @contextmanager
    def opened() -> Iterator[Engine]:
        yield Engine()

    tick = ReconcileTick(opened)
    assert tick.tick(request()).state == "progressing"
    done = tick.tick(request())
    assert (done.state, done.reason) == ("failed", "rolled_back: bake: alarm checkout-5xx")


FLEET = """  {name}:
    image: app
    instance_type: t3.micro
    subnets: [orc-a]
    security_groups: [orc-web]
    capacity: {{min: 2, desired: 2, max: 4}}
    strategy: {{type: rolling, batch_size: 1, min_healthy: 100%, bake: {bake}}}
    health:
      timeout: 30s
      interval: 1s
      checks:
        - {{type: ec2}}
        - {{type: http, url: 'http://127.0.0.1:{port}/{name}/{{instance_id}}', failures: 1}}
    rollback: {{automatic: true}}
"""


def spec_text(ami: str, port: int, *, bakes: dict[str, str], waves: str) -> str:
    text = f"""apiVersion: immutable-sdk/v1
name: orc
region: us-east-1
state: {{backend: dynamodb, table: orc-state}}
images:
  app: {{builder: ami, id: {ami}}}
fleets:
"""
    for name, bake in bakes.items():
        text += FLEET.format(name=name, bake=bake, port=port)
    return text + waves


class Health:
    """Per fleet, what the test's health server answers (200 unless told otherwise)."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.server = HealthServer(lambda _instance: 200)
        outer = self

        handler = self.server.server.RequestHandlerClass

        def do_get(req: Any) -> None:
            fleet = req.path.strip("/").split("/")[0]
            code = outer.codes.get(fleet, 200)
            req.send_response(code)
            req.send_header("Content-Length", "0")
            req.end_headers()

        handler.do_GET = do_get  # type: ignore[attr-defined]

    @property
    def port(self) -> int:
        return int(self.server.port)


@pytest.fixture
def health() -> Iterator[Health]:
    h = Health()
    h.server.__enter__()
    yield h
    h.server.__exit__()


def fleet_view(project: Project, fleet: str) -> dict[str, Any]:
    """The fleet's group: its release tag, capacity, instances and their release tags."""
    asg = project.client("autoscaling")
    (group,) = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[f"orc-{fleet}"])[
        "AutoScalingGroups"
    ]
    ids = [i["InstanceId"] for i in group["Instances"]]
    ec2 = project.client("ec2")
    found = ec2.describe_instances(InstanceIds=ids)["Reservations"] if ids else []
    releases = sorted(
        {t["Key"]: t["Value"] for t in i.get("Tags", [])}.get("immutable-sdk:release", "?")
        for r in found
        for i in r["Instances"]
    )
    versions = project.client("ec2").describe_launch_template_versions(
        LaunchTemplateName=f"orc-{fleet}"
    )["LaunchTemplateVersions"]
    return {
        "release": {t["Key"]: t["Value"] for t in group["Tags"]}.get("immutable-sdk:release"),
        "desired": group["DesiredCapacity"],
        "instances": sorted(ids),
        "instance_releases": releases,
        "versions": sorted(v["VersionNumber"] for v in versions),
    }


def running_instances(project: Project) -> set[str]:
    out = project.client("ec2").describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )
    return {i["InstanceId"] for r in out["Reservations"] for i in r["Instances"]}


def leftovers(project: Project) -> list[str]:
    """Unfinished rollouts and held locks, as ``status`` reports them."""
    status = project.cli("status", "-f", str(project.spec), "-o", "json")
    assert status.exit_code in (0, 1), status.output
    fleets = json.loads(status.stdout)["fleets"]
    return [
        f"{f['fleet']}: {what}"
        for f in fleets
        for what in ("rollout_in_progress", "lock")
        if f.get(what)
    ]


def rolled_out(project: Project, health: Health, bakes: dict[str, str], waves: str) -> None:
    """The fleets created on release 1 (AMI_V1) by a local apply, then AMI_V2 in the spec."""
    project.write(spec_text(AMI_V1, health.port, bakes=bakes, waves=waves), {})
    Sandbox.attach(project.url).seed(load_spec([project.spec]))
    project.install("--heartbeat", "10s")
    created = project.cli("apply", "-f", str(project.spec), "--yes", "-o", "json")
    assert created.exit_code == 0, created.output
    project.write(spec_text(AMI_V2, health.port, bakes=bakes, waves=waves), {})


WAVES = """waves:
  - {name: first, fleets: [web, api], bake: 0s}
  - {name: second, fleets: [jobs], bake: 0s}
"""


@pytest.mark.skipif(not hasattr(Engine, "reconcile"), reason="needs the reconcile tick")
def test_a_failing_unit_rolls_back_its_sibling_finishes_and_later_waves_wait(
    project: Project, health: Health
) -> None:
    bakes = {"web": "4s", "api": "0s", "jobs": "0s"}
    rolled_out(project, health, bakes, WAVES)
    before = {f: fleet_view(project, f) for f in bakes}
    health.codes["api"] = 500  # api's new instances fail their gate (and so would its old)

    applied = project.cli(
        "apply", "-f", str(project.spec), "--yes", "--on", "step-functions", "-o", "json"
    )
    assert applied.exit_code == 0, applied.output
    arn = json.loads(applied.stdout)["execution_arn"]
    for _ in range(2):  # they exit once the execution sends nothing more
        project.worker("--concurrency", "2", "--idle-exit", "10s", tick=None)
    done = project.wait_for(arn, timeout=120)
    assert done["status"] == "FAILED", (done, project.logs())
    assert done["error"] == "ImmutableSdk.UnitFailed"
    cause = done["cause"]
    assert cause.startswith("1 of 2 unit(s) of wave first failed"), cause
    (failure,) = json.loads(cause[cause.index("[") :])
    assert failure.startswith("api: ") and "http" in failure, failure
    after = {f: fleet_view(project, f) for f in bakes}
    # api: back on its previous release, at its capacity, its failed version deleted
    assert after["api"]["release"] == before["api"]["release"]
    assert set(after["api"]["instance_releases"]) == {before["api"]["release"]}
    assert len(after["api"]["instances"]) >= 2
    assert after["api"]["versions"] == before["api"]["versions"]
    # web: converged beside it, on the new release
    assert after["web"]["release"] != before["web"]["release"]
    assert set(after["web"]["instance_releases"]) == {after["web"]["release"]}
    assert len(after["web"]["instances"]) == 2
    # jobs: never touched
    assert after["jobs"] == before["jobs"]
    # nothing orphaned: every running instance is a member of a group
    members = {i for view in after.values() for i in view["instances"]}
    assert running_instances(project) == members
    assert leftovers(project) == []
    # api's branch ended after its rollback: its last answer was the failure, web's converged
    units = unit_states(project.aws.history(arn))
    assert units["api"]["state"] == "failed" and units["web"]["state"] == "converged"
    assert "jobs" not in units
    # the workers went idle and exited on their own
    assert [w.wait(timeout=60) for w in project.workers] == [0, 0], project.logs()
