"""What the emulator lacks, on the rollout's clock: boot, warm-up and deregistration delay.

moto's instances are InService at once and its targets leave a target group at once. This
plugin adds those waits the way AWS imposes them, on whatever clock the engine runs:

* health check ``simulated-boot``: an instance is ``pending`` until ``boot + warmup`` seconds
  after the check first saw it (right after its launch), then healthy;
* deregistration delay: when a ``retire`` step starts, the rollout waits ``deregistration``
  seconds, as a target group drains (``deregistration_delay.timeout_seconds``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from immutable_sdk.plugin import (
    GateTargets,
    HealthReport,
    PluginContext,
    Registry,
    hookimpl,
    parse_duration,
)

SCHEMA = {
    "type": "object",
    "required": ["type"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "simulated-boot", "description": "Selects this check."},
        "boot": {"type": "string", "description": "Time from launch to a running OS."},
        "warmup": {"type": "string", "description": "Time the application needs to warm up."},
    },
}


class Simulation:
    """The plugin object: first sightings are shared by every check instance it makes."""

    def __init__(self, clock: Any, deregistration: float = 0.0) -> None:
        self.clock = clock
        self.deregistration = deregistration
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()

    def factory(self, config: Mapping[str, Any]) -> Any:
        ready_after = parse_duration(config.get("boot", "90s")) + parse_duration(
            config.get("warmup", "0s")
        )
        sim = self

        class SimulatedBoot:
            def check(self, targets: GateTargets, ctx: PluginContext) -> HealthReport:
                now = ctx.clock.monotonic()
                waiting = {}
                with sim.lock:
                    for t in targets.instances:
                        first = sim.seen.setdefault(t.instance_id, now)
                        left = ready_after - (now - first)
                        if left > 0:
                            waiting[t.instance_id] = f"booting, {left:g}s left"
                if waiting:
                    return HealthReport.pending(f"{len(waiting)} booting", **waiting)
                return HealthReport.healthy(f"{len(targets.instances)} ready")

        return SimulatedBoot()

    @hookimpl
    def immutable_sdk_add_health_checks(self, registry: Registry[Any]) -> None:
        registry.add("simulated-boot", self.factory, schema=SCHEMA, description="benchmark")

    @hookimpl
    def immutable_sdk_step_started(self, rollout: Any, step: Any) -> None:
        if step.kind == "retire" and self.deregistration:
            self.clock.sleep(self.deregistration)
