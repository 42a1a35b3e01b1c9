"""Simulated boot and warm-up for rehearsals: a health check that passes only once an instance
has existed for ``boot + warmup`` seconds of the (virtual) clock.

The emulator's instances are in service the moment they launch, so the time a real instance
takes to boot and warm up is put where a rollout waits for it: in its gates. Each rehearsed
fleet's health checks get this check first; an instance's time starts when a gate first sees
it, right after its launch.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ...plugin import (
    GateTargets,
    HealthCheckFactory,
    HealthReport,
    HealthStatus,
    PluginContext,
    Registry,
    hookimpl,
)

CHECK = "rehearsal-warmup"
SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "description": "Rehearsals only: healthy once an instance booted and warmed up.",
    "properties": {"type": {"const": CHECK}},
    "required": ["type"],
    "additionalProperties": False,
}


class WarmUp:
    """The plugin: registers the check; remembers when each instance was first seen."""

    def __init__(self, boot: float, warmup: float) -> None:
        self.boot, self.warmup = boot, warmup
        self.first_seen: dict[str, float] = {}
        self._lock = threading.Lock()

    @hookimpl
    def immutable_sdk_add_health_checks(self, registry: Registry[HealthCheckFactory]) -> None:
        registry.add(CHECK, lambda config: self, schema=SCHEMA, description=SCHEMA["description"])

    def check(self, targets: GateTargets, ctx: PluginContext) -> HealthReport:
        now = ctx.clock.monotonic()
        details: dict[str, str] = {}
        waiting = 0
        for target in targets.instances:
            with self._lock:
                seen = self.first_seen.setdefault(target.instance_id, now)
            age = now - seen
            if age < self.boot:
                details[target.instance_id] = f"booting ({self.boot - age:g}s left)"
            elif age < self.boot + self.warmup:
                details[target.instance_id] = (
                    f"warming up ({self.boot + self.warmup - age:g}s left)"
                )
            else:
                details[target.instance_id] = "booted and warm"
                continue
            waiting += 1
        total = len(targets.instances)
        if waiting:
            return HealthReport(HealthStatus.PENDING, details, f"{total - waiting}/{total} warm")
        return HealthReport(HealthStatus.HEALTHY, details, f"{total}/{total} booted and warm")
