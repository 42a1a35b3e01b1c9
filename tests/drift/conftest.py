"""Drift tests reuse the engine tests' seeded emulator account (``World``)."""

from __future__ import annotations

import time
from typing import Any

from engine.conftest import AMI_V1, AMI_V2, World, fleet_spec, world
from immutable_sdk.clock import VirtualClock

__all__ = ["AMI_V1", "AMI_V2", "World", "drift_spec", "launch_times", "world"]

DAY = 86_400.0


def drift_spec(*, desired: int = 2, max_lifetime: str | None = None, **kwargs: Any) -> str:
    """The engine tests' fleet, with its state file next to the spec (the CLI finds it too)."""
    text = fleet_spec(desired=desired, **kwargs)
    text = text.replace("region: us-east-1\n", "region: us-east-1\nstate: {path: state.db}\n", 1)
    if max_lifetime:
        text += f"    max_lifetime: {max_lifetime}\n"
    return text


def real_now_clock(world: World) -> VirtualClock:
    """A virtual clock that starts at the wall time: the emulator stamps real launch times."""
    world.clock = VirtualClock(start=time.time())
    return world.clock


def launch_times(world: World, ids: list[str]) -> dict[str, float]:
    return {i["InstanceId"]: i["LaunchTime"].timestamp() for i in world.instances(ids)}
