"""Images build in parallel, and a fleet starts as soon as its own image exists.

A test builder plugin builds on the engine's (virtual) clock: ``seconds`` of build time, then
an AMI the emulator ships; ``fail: true`` fails the build after its time. Three images, three
fleets: the fast image's fleet must roll out while the slow image is still building, all three
builds must start at once, and the broken image must fail only its own fleet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from immutable_sdk.errors import BuildError
from immutable_sdk.plugin import Artifact, ImageSpec, PluginContext, hookimpl, parse_duration

from .conftest import AMI_V1, AMI_V2, World

SPEC = """
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  fast: {builder: clocked, seconds: 10s, ami: AMI_V1}
  slow: {builder: clocked, seconds: 30m, ami: AMI_V2}
  broken: {builder: clocked, seconds: 5s, ami: AMI_V1, fail: true}
fleets:
FLEETS"""
FLEET = """  {name}:
    image: {image}
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {{min: 1, desired: 1, max: 2}}
    strategy: {{type: rolling, batch_size: 1, min_healthy: 100%}}
    health: {{timeout: 5m, interval: 5s, checks: [{{type: ec2}}]}}
"""


class ClockedBuilder:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.seconds = parse_duration(str(config["seconds"]))
        self.ami = {"AMI_V1": AMI_V1, "AMI_V2": AMI_V2}[str(config["ami"])]
        self.fail = bool(config.get("fail", False))

    def digest(self, image: ImageSpec, ctx: PluginContext) -> str:
        return f"clocked-{image.name}"

    def find(self, image: ImageSpec, ctx: PluginContext) -> Artifact | None:
        return None  # always built

    def build(self, image: ImageSpec, ctx: PluginContext) -> Artifact:
        ctx.clock.sleep(self.seconds)
        if self.fail:
            raise BuildError(image.name, "the test builder fails")
        return Artifact(
            image.name, "clocked", self.digest(image, ctx), {ctx.region: self.ami}, built=True
        )


class ClockedPlugin:
    @hookimpl
    def immutable_sdk_add_builders(self, registry: Any) -> None:
        registry.add(
            "clocked",
            ClockedBuilder,
            schema={
                "type": "object",
                "required": ["builder", "seconds", "ami"],
                "properties": {
                    "builder": {"const": "clocked"},
                    "seconds": {"type": "string"},
                    "ami": {"enum": ["AMI_V1", "AMI_V2"]},
                    "fail": {"type": "boolean"},
                },
                "additionalProperties": False,
            },
        )


def test_builds_overlap_and_fleets_start_before_unrelated_builds_finish(world: World) -> None:
    fleets = "".join(
        FLEET.format(name=n, image=i) for n, i in (("a", "fast"), ("b", "slow"), ("c", "broken"))
    )
    world.write(SPEC.replace("FLEETS", fleets))
    world.extra_plugins.append(ClockedPlugin())
    with world.engine() as engine:
        plan = engine.plan()
        assert sorted(plan.builds) == ["broken", "fast", "slow"]
        result = engine.apply(plan, parallelism=3)

    t0 = world.events[0].at
    started = {e.data["image"]: e.at - t0 for e in world.of_kind("build.started")}
    finished = {e.data["image"]: e.at - t0 for e in world.of_kind("build.finished")}
    # Independent builds overlap: all three start at once, each takes its own time.
    assert started == {"fast": 0.0, "slow": 0.0, "broken": 0.0}
    assert finished == {"fast": 10.0, "slow": 1800.0}
    assert [e.data["image"] for e in world.of_kind("build.failed")] == ["broken"]
    # Fleet a rolled out (launch and gate) before the slow build finished.
    a_done = max(e.at - t0 for e in world.events if e.fleet == "a")
    assert 10.0 <= a_done < 1800.0
    b_first = min(e.at - t0 for e in world.events if e.fleet == "b")
    assert 1800.0 <= b_first <= 1801.0  # within a poll of its image
    # The failed build fails only its own fleet; the others are created.
    outcomes = {f.fleet: f.outcome for f in result.fleets}
    assert outcomes["a"] != "failed" and outcomes["b"] != "failed", outcomes
    assert outcomes["c"] == "failed"
    assert "image 'broken': the test builder fails" in (result.fleet("c").error or "")
    assert sorted(b["image"] for b in result.builds) == ["fast", "slow"]
    assert not result.ok
    assert result.duration < 1800.0 + 600.0  # the builds took the slow one's time, not the sum


def test_builds_wait_for_a_free_place_beyond_the_parallelism(world: World) -> None:
    fleets = "".join(FLEET.format(name=n, image=i) for n, i in (("a", "fast"), ("b", "slow")))
    world.write(SPEC.replace("FLEETS", fleets).replace(SPEC.splitlines()[7] + "\n", ""))
    world.extra_plugins.append(ClockedPlugin())
    with world.engine() as engine:
        result = engine.apply(parallelism=1)
    t0 = world.events[0].at
    started = {e.data["image"]: e.at - t0 for e in world.of_kind("build.started")}
    assert started == {"fast": 0.0, "slow": 10.0}  # one at a time: in plan order
    assert result.ok, result.to_dict()
