"""What ``Engine.apply`` and friends return: outcomes per fleet, releases, API call counts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# "aborted": an unfinished rollout rolled back because someone asked (--abort-unfinished).
# "pinned": a rollback holds the fleet on its release (holds.py): no change, as asked.
OK_OUTCOMES = (
    "noop",
    "promoted",
    "created",
    "scaled",
    "destroyed",
    "skipped",
    "aborted",
    "pinned",
)


@dataclass
class FleetResult:
    fleet: str
    action: str  # the plan's action
    # noop | promoted | scaled | destroyed | skipped | aborted | rolled_back | failed |
    # rollback_unfinished (the rollback stopped: the rollout stays unfinished, apply finishes
    # it) | locked (another rollout holds the fleet) | lock_lost (taken over while running) |
    # quarantined (its release failed its gates before: apply --retry-failed) | pinned
    outcome: str
    from_release: str | None = None
    to_release: str | None = None
    rollout: str | None = None
    error: str | None = None
    failed_instances: dict[str, str] = field(default_factory=dict)  # instance -> what failed
    rolled_back_to: str | None = None
    launched: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome in OK_OUTCOMES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ApplyResult:
    project: str
    fleets: list[FleetResult] = field(default_factory=list)
    builds: list[dict[str, Any]] = field(default_factory=list)  # artifacts built by this apply
    api_calls: dict[str, Any] = field(default_factory=dict)
    duration: float = 0.0  # clock seconds

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.fleets)

    @property
    def outcome(self) -> str:
        return "ok" if self.ok else "failed"

    def fleet(self, name: str) -> FleetResult:
        for f in self.fleets:
            if f.fleet == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "outcome": self.outcome,
            "duration": self.duration,
            "fleets": [f.to_dict() for f in self.fleets],
            "builds": self.builds,
            "api_calls": self.api_calls,
        }
