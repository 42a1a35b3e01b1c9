"""A resumable build (the EC2 Image Builder shape) outlasts the reconcile tick that starts it.

A test builder plugin implements the ``ResumableBuilder`` contract: ``start`` submits a build
(counted) and returns a handle, ``poll`` answers ``running`` twice, then ``done`` with an AMI
the emulator ships. Each tick is a new engine (the objects a fresh process would have) on one
virtual clock: the first tick starts the build and returns at once, waiting for ``build``;
later ticks poll it once each, never start a second build, and the tick that sees it done
rolls the fleet out. ``apply`` (no tick) still blocks on ``build``, as it always did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from immutable_sdk.plugin import (
    BUILD_DONE,
    BUILD_RUNNING,
    Artifact,
    BuildPoll,
    ImageSpec,
    PluginContext,
    hookimpl,
)

from .conftest import AMI_V2, World

SPEC = """
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web: {builder: service}
fleets:
  web:
    image: web
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {min: 1, desired: 1, max: 2}
    strategy: {type: rolling, batch_size: 1, min_healthy: 100%}
    health: {timeout: 5m, interval: 5s, checks: [{type: ec2}]}
"""


class ServiceBuilder:
    """Builds in "a service": done at the third poll of a build, whoever polls."""

    starts: ClassVar[list[str | None]] = []  # the idempotency token of each start
    polls: ClassVar[int] = 0
    blocking: ClassVar[int] = 0

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    def digest(self, image: ImageSpec, ctx: PluginContext) -> str:
        return "service-web-1"

    def find(self, image: ImageSpec, ctx: PluginContext) -> Artifact | None:
        return None  # the planner builds; a done build is read from the state store

    def start(
        self, image: ImageSpec, ctx: PluginContext, *, token: str | None = None
    ) -> Mapping[str, Any]:
        ServiceBuilder.starts.append(token)
        return {"arn": f"build/{len(ServiceBuilder.starts)}"}

    def poll(self, image: ImageSpec, handle: Mapping[str, Any], ctx: PluginContext) -> BuildPoll:
        ServiceBuilder.polls += 1
        if ServiceBuilder.polls < 3:
            return BuildPoll(BUILD_RUNNING, detail="BUILDING")
        artifact = Artifact(
            image.name, "service", "service-web-1", {ctx.region: AMI_V2}, built=True
        )
        return BuildPoll(BUILD_DONE, artifact=artifact, detail="AVAILABLE")

    def build(self, image: ImageSpec, ctx: PluginContext) -> Artifact:
        ServiceBuilder.blocking += 1
        return Artifact(image.name, "service", "service-web-1", {ctx.region: AMI_V2}, built=True)


class ServicePlugin:
    @hookimpl
    def immutable_sdk_add_builders(self, registry: Any) -> None:
        registry.add(
            "service",
            ServiceBuilder,
            schema={
                "type": "object",
                "properties": {"builder": {"const": "service"}},
                "additionalProperties": False,
            },
        )


@pytest.fixture(autouse=True)
def fresh_service() -> None:
    ServiceBuilder.starts, ServiceBuilder.polls, ServiceBuilder.blocking = [], 0, 0


def test_a_build_started_by_one_tick_is_polled_by_the_next_and_rolled_out(world: World) -> None:
    world.write(SPEC)
    world.extra_plugins.append(ServicePlugin())
    nexts: list[float] = []
    for _ in range(2):  # started, then polled once more: still building
        with world.engine() as engine:
            tick = engine.reconcile(start=True, budget=30)
        unit = tick.units["web"]
        assert (unit.state, unit.waiting_for) == ("progressing", "build"), unit
        assert unit.next_at is not None
        nexts.append(unit.next_at)
        world.clock.advance(unit.next_at - world.clock.now())
    assert len(ServiceBuilder.starts) == 1 and ServiceBuilder.polls == 2
    assert [e.data["next_at"] for e in world.of_kind("build.waiting")] == nexts
    assert nexts[1] - nexts[0] == pytest.approx(60.0)  # one look a minute (BUILD_POLL)

    with world.engine() as engine:
        done = engine.reconcile(start=True, budget=30)
        assert done.units["web"].state in ("converged", "progressing"), done.units
        while done.units["web"].state == "progressing":  # the new fleet's own waits
            assert done.units["web"].next_at is not None
            world.clock.advance(max(done.units["web"].next_at - world.clock.now(), 0.0))
            done = engine.reconcile(start=True, budget=30)
    assert done.units["web"].state == "converged", done.units
    assert len(ServiceBuilder.starts) == 1 and ServiceBuilder.polls == 3
    assert ServiceBuilder.blocking == 0  # a tick never blocks on a resumable build
    assert [m["ImageId"] for m in world.members()] == [AMI_V2]
    assert [e.data["image"] for e in world.of_kind("build.finished")] == ["web"]


def test_apply_blocks_on_the_build_as_before(world: World) -> None:
    world.write(SPEC)
    world.extra_plugins.append(ServicePlugin())
    with world.engine() as engine:
        result = engine.apply()
    assert result.ok, result.fleets
    assert ServiceBuilder.blocking == 1 and ServiceBuilder.starts == []
