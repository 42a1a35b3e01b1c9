"""Shared fixtures of the builder tests: a plugin context on the moto server, image specs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from immutable_sdk.aws.session import AwsSession
from immutable_sdk.clock import VirtualClock
from immutable_sdk.core.context import Context
from immutable_sdk.lifecycle import Event
from immutable_sdk.plugin import ImageSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "specs" / "examples"


class Recorder:
    """The events a context emitted."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def lines(self) -> list[str]:
        return [str(e.data["line"]) for e in self.events if e.kind == "build.output"]


@pytest.fixture
def events() -> Recorder:
    return Recorder()


@pytest.fixture
def ctx(aws: str, events: Recorder) -> Context:
    return Context(
        project="t",
        region="us-east-1",
        session=AwsSession("us-east-1", endpoint_url=aws),
        clock=VirtualClock(),
        sink=events,
    )


ImageFactory = Callable[..., ImageSpec]


def image_spec(
    config: Mapping[str, Any],
    *,
    name: str = "web",
    regions: tuple[str, ...] = ("us-east-1",),
    base_dir: Path = EXAMPLES,
    retain: int | None = None,
) -> ImageSpec:
    return ImageSpec(
        name=name,
        builder=str(config["builder"]),
        config=dict(config),
        regions=regions,
        retain=retain,
        base_dir=base_dir,
    )


def own_images(ctx: Context, region: str = "us-east-1") -> list[dict[str, Any]]:
    return list(ctx.client("ec2", region).describe_images(Owners=["self"])["Images"])


def tags_of(resource: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", ())}


def running_instances(ctx: Context, region: str = "us-east-1") -> list[str]:
    reservations = ctx.client("ec2", region).describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]
    return [i["InstanceId"] for r in reservations for i in r["Instances"]]
