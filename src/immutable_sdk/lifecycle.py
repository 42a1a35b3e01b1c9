"""The shared rollout lifecycle: step vocabulary, phases, events.

A strategy turns a change into a list of steps; the engine runs them in order, journals each
before and after, and gates them. Steps name *what* should happen; the engine knows *how* on AWS.
Within a rollout the "target release" is the release being rolled out (the previous release when
rolling back); steps refer to it implicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, ClassVar

from .errors import StateError
from .units import format_duration


class Phase(str, Enum):
    PLANNED = "planned"
    BUILDING = "building"
    PROVISIONING = "provisioning"
    SHIFTING = "shifting"  # traffic moves between slots (blue/green, canary)
    REPLACING = "replacing"  # instances replaced in place, batch by batch (rolling)
    VERIFYING = "verifying"
    PROMOTED = "promoted"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (Phase.PROMOTED, Phase.ROLLED_BACK, Phase.FAILED)


@dataclass(frozen=True)
class Step:
    """Base of every step. ``kind`` names it in the journal and in events."""

    kind: ClassVar[str] = "step"
    phase: ClassVar[Phase] = Phase.PROVISIONING

    def describe(self) -> str:
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class Launch(Step):
    """Add ``count`` instances of the target release to the fleet (group or slot)."""

    count: int
    slot: str | None = None
    kind: ClassVar[str] = "launch"
    phase: ClassVar[Phase] = Phase.PROVISIONING

    def describe(self) -> str:
        where = f" in slot {self.slot}" if self.slot else ""
        return f"launch {self.count} instance(s) of the new release{where}"


@dataclass(frozen=True)
class Gate(Step):
    """Wait until the fleet's health checks pass on the target release's instances."""

    slot: str | None = None
    kind: ClassVar[str] = "gate"
    phase: ClassVar[Phase] = Phase.VERIFYING

    def describe(self) -> str:
        return "gate on health checks" + (f" in slot {self.slot}" if self.slot else "")


@dataclass(frozen=True)
class Retire(Step):
    """Deregister, drain and terminate ``count`` instances that are not on the target release."""

    count: int
    slot: str | None = None
    kind: ClassVar[str] = "retire"
    phase: ClassVar[Phase] = Phase.SHIFTING

    def describe(self) -> str:
        if self.slot:
            return f"retire slot {self.slot} ({self.count} instance(s))"
        return f"retire {self.count} instance(s) of the previous release"


@dataclass(frozen=True)
class Bake(Step):
    """Wait ``seconds`` while health checks and alarms keep watching; any failure fails the step."""

    seconds: float
    kind: ClassVar[str] = "bake"
    phase: ClassVar[Phase] = Phase.VERIFYING

    def describe(self) -> str:
        return f"bake {format_duration(self.seconds)}"


@dataclass(frozen=True)
class Pause(Step):
    """Wait ``seconds``, or until an operator runs ``promote`` when ``manual``."""

    seconds: float = 0.0
    manual: bool = False
    kind: ClassVar[str] = "pause"
    phase: ClassVar[Phase] = Phase.VERIFYING

    def describe(self) -> str:
        return "pause until promoted" if self.manual else f"pause {format_duration(self.seconds)}"


@dataclass(frozen=True)
class Provision(Step):
    """Create or adopt the group of ``slot`` on the target release with ``capacity`` instances."""

    slot: str
    capacity: int
    kind: ClassVar[str] = "provision"
    phase: ClassVar[Phase] = Phase.PROVISIONING

    def describe(self) -> str:
        return f"provision slot {self.slot} with {self.capacity} instance(s)"


@dataclass(frozen=True)
class ShiftTraffic(Step):
    """Set the weights of the traffic slots (slot name -> 0..100)."""

    weights: Mapping[str, int] = field(default_factory=dict)
    kind: ClassVar[str] = "shift"
    phase: ClassVar[Phase] = Phase.SHIFTING

    def describe(self) -> str:
        return "shift traffic " + ", ".join(f"{k}={v}" for k, v in self.weights.items())

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "weights": dict(self.weights)}


@dataclass(frozen=True)
class Analyze(Step):
    """Judge the release on metrics or alarms; ``config`` is the analysis block (``type``...).

    Traffic-shifting strategies emit it for their ``{analysis: ...}`` steps; the engine runs
    the analysis named by ``config["type"]`` against the new and the previous slot.
    """

    config: Mapping[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "analysis"
    phase: ClassVar[Phase] = Phase.VERIFYING

    def describe(self) -> str:
        return f"analysis {self.config.get('type', '')}".rstrip()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": dict(self.config)}


@dataclass(frozen=True)
class Scale(Step):
    """Set the fleet's capacity without changing any instance's release."""

    min: int
    desired: int
    max: int
    kind: ClassVar[str] = "scale"
    phase: ClassVar[Phase] = Phase.PROVISIONING

    def describe(self) -> str:
        return f"scale to min={self.min} desired={self.desired} max={self.max}"


STEP_TYPES: dict[str, type[Step]] = {
    cls.kind: cls
    for cls in (Launch, Gate, Retire, Bake, Pause, Provision, ShiftTraffic, Analyze, Scale)
}


def step_from_dict(data: Mapping[str, Any]) -> Step:
    """Rebuild a step from its journal form (``Step.to_dict``); StateError when it cannot be
    (an unknown kind, missing or unknown fields: a damaged or newer state store)."""
    fields = dict(data)
    kind = fields.pop("kind", None)
    cls = STEP_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise StateError(f"unknown step kind {kind!r} (known: {', '.join(sorted(STEP_TYPES))})")
    try:
        return cls(**fields)
    except TypeError as exc:
        raise StateError(f"step kind {kind!r}: {exc}") from exc


@dataclass(frozen=True)
class Event:
    """A structured event of a rollout or command; the engine's only output channel.

    ``kind`` is dotted (``rollout.started``, ``step.finished``, ``gate.poll``, ``capacity``,
    ``traffic.shifted``, ``build.output``, ...). ``at`` is the clock's wall time.
    """

    kind: str
    at: float
    fleet: str | None = None
    rollout: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "at": self.at,
            "fleet": self.fleet,
            "rollout": self.rollout,
            **dict(self.data),
        }
