"""Helpers for the durability tests: crashing an engine on purpose, and checking convergence."""

from __future__ import annotations

from typing import Any

from immutable_sdk.aws.fence import mutating
from immutable_sdk.core.engine import Engine
from immutable_sdk.plugin import TAG_FLEET, TAG_RELEASE, hookimpl
from immutable_sdk.state.sqlite import SqliteStateStore

from .conftest import World, tag


class Crash(BaseException):
    """A process dying: nothing in the SDK catches it (it is not an Exception)."""


class CrashAtBoundary:
    """Crashes right after the journal recorded step ``index`` as ``when`` (started|finished)."""

    def __init__(self, when: str, index: int) -> None:
        self.when, self.index = when, index
        self.seen = {"started": -1, "finished": -1}

    def _count(self, when: str) -> None:
        self.seen[when] += 1
        if when == self.when and self.seen[when] == self.index:
            raise Crash(f"{when} {self.index}")

    @hookimpl
    def immutable_sdk_step_started(self, rollout: Any, step: Any) -> None:
        self._count("started")

    @hookimpl
    def immutable_sdk_step_finished(self, rollout: Any, step: Any, outcome: str) -> None:
        self._count("finished")


def crash_at_call(engine: Engine, n: int, *, after: bool) -> None:
    """Crash at the ``n``-th mutating AWS call (0-based): before it is sent, or after AWS
    answered it (``after``), as a process killed there would."""
    seen = [-1]

    def before_send(event_name: str = "", **_: Any) -> None:
        if mutating(event_name):
            seen[0] += 1
            if not after and seen[0] == n:
                raise Crash(f"before {event_name}")

    def after_call(event_name: str = "", **_: Any) -> None:
        name = "before-send." + event_name.split(".", 1)[1]
        if after and mutating(name) and seen[0] == n:
            raise Crash(f"after {event_name}")

    engine.session.events.register("before-send.*.*", before_send)
    engine.session.events.register("after-call.*.*", after_call)


def release_versions(world: World) -> list[str]:
    """The release tag of every launch template version of the fleet (one per version)."""
    out = world.client("ec2").describe_launch_template_versions(LaunchTemplateName="shop-web")
    releases = []
    for v in out["LaunchTemplateVersions"]:
        tags = {
            t["Key"]: t["Value"]
            for spec in v["LaunchTemplateData"].get("TagSpecifications", [])
            for t in spec["Tags"]
        }
        releases.append(tags.get(TAG_RELEASE, "?"))
    return sorted(releases)


def fleet_instances(world: World) -> list[dict[str, Any]]:
    """Every pending or running instance tagged with the fleet, in a group or not."""
    out = world.client("ec2").describe_instances(
        Filters=[
            {"Name": f"tag:{TAG_FLEET}", "Values": ["web"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )
    return [i for r in out["Reservations"] for i in r["Instances"]]


def assert_converged(
    world: World, release: str, ami: str, *, desired: int, releases: list[str]
) -> None:
    """The fleet runs exactly ``desired`` instances of ``release``, nothing else anywhere,
    with the spec's capacity, no suspended process, and one template version per release."""
    members = world.members()
    assert len(members) == desired, [m["InstanceId"] for m in members]
    assert {m["ImageId"] for m in members} == {ami}
    assert {tag(m, TAG_RELEASE) for m in members} == {release}
    everywhere = {i["InstanceId"] for i in fleet_instances(world)}
    assert everywhere == {m["InstanceId"] for m in members}, "instances left outside the group"
    group = world.group()
    assert (group["MinSize"], group["DesiredCapacity"], group["MaxSize"]) == (
        desired,
        desired,
        desired * 2,
    )
    assert not group.get("SuspendedProcesses")
    assert {t["Key"]: t["Value"] for t in group["Tags"]}[TAG_RELEASE] == release
    assert release_versions(world) == sorted(releases)


def assert_state_settled(world: World) -> None:
    """No unfinished rollout, no lock: the state store agrees that nothing is in flight."""
    with SqliteStateStore(world.tmp / "state.db", "shop") as state:
        assert state.unfinished_rollout("web") is None
        assert state.get_lock("web") is None


def min_healthy(world: World) -> int:
    """The lowest healthy in-service count any runner observed (``capacity`` events)."""
    return min(e.data["healthy"] for e in world.of_kind("capacity"))
