"""What the engine returns: plans, outcomes per fleet, releases, API call counts, status."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

from .errors import ExitCode
from .plugin import Artifact

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
    # outcome "waiting" (a reconcile tick stopped the rollout at a safe point): what it waits
    # for (bake, pause, operator, gate...), until when (epoch seconds; None: an operator),
    # and the step it waits in. Outcome "locked": next_at is when the holder's lease ends
    waiting_for: str | None = None
    next_at: float | None = None
    step: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in OK_OUTCOMES

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.waiting_for is None:  # only a reconcile tick's results wait
            for key in ("waiting_for", "next_at", "step"):
                del data[key]
        return data


# What a reconcile tick found a unit doing (``UnitTick.state``), from the tick's outcome.
CONVERGED_OUTCOMES = ("noop", "promoted", "created", "scaled", "destroyed", "skipped", "aborted")
# "rolling_back": a reconcile tick's rollback waits (the DNS TTL...): the next tick goes on
FAILED_OUTCOMES = ("failed", "rolled_back", "rollback_unfinished", "blocked", "rolling_back")
LOCK_OUTCOMES = ("locked", "lock_lost")


@dataclass
class UnitTick:
    """One unit (``fleet[@region]``) after a reconcile tick.

    ``state``: ``converged`` (runs its desired release, nothing unfinished), ``progressing``
    (waits on time until ``next_at``, epoch seconds; or behind a unit that does),
    ``waiting_for_operator`` (a manual pause or an inconclusive analysis waits for
    ``promote``; or a rollout the plan needs waits for ``--yes``), ``failed`` (failed or
    rolled back during this tick) or ``locked`` (another process holds it).
    """

    state: str
    outcome: str
    rollout: str | None = None
    step: str | None = None
    waiting_for: str | None = None
    next_at: float | None = None
    error: str | None = None
    from_release: str | None = None
    to_release: str | None = None

    @classmethod
    def of(cls, result: FleetResult) -> UnitTick:
        outcome = result.outcome
        if outcome in CONVERGED_OUTCOMES:
            state = "converged"
        elif outcome in LOCK_OUTCOMES:
            state = "locked"
        elif outcome == "planned" or (outcome == "waiting" and result.waiting_for == "operator"):
            state = "waiting_for_operator"
        elif outcome in ("waiting", "pending", "baking"):
            state = "progressing"
        else:
            state = "failed"
        return cls(
            state=state,
            outcome=outcome,
            rollout=result.rollout,
            step=result.step,
            waiting_for=result.waiting_for,
            next_at=result.next_at,
            error=result.error,
            from_release=result.from_release,
            to_release=result.to_release,
        )


@dataclass
class ReconcileResult:
    """One reconcile tick over a spec's units (``Engine.reconcile``)."""

    project: str
    units: dict[str, UnitTick] = field(default_factory=dict)
    api_calls: dict[str, Any] = field(default_factory=dict)
    duration: float = 0.0  # clock seconds

    @property
    def next_at(self) -> float | None:
        """The earliest time a unit waits for (None: nothing waits on time)."""
        times = [u.next_at for u in self.units.values() if u.next_at is not None]
        return min(times) if times else None

    @property
    def converged(self) -> bool:
        return all(u.state == "converged" for u in self.units.values())

    @property
    def exit_code(self) -> int:
        """0 converged, 1 failed during this tick, 3 locked, 11 waiting for an operator,
        10 progressing (``errors.ExitCode``)."""
        states = {u.state for u in self.units.values()}
        for state, code in (
            ("failed", ExitCode.FAILED),
            ("locked", ExitCode.LOCKED),
            ("waiting_for_operator", ExitCode.WAITING),
            ("progressing", ExitCode.PROGRESSING),
        ):
            if state in states:
                return int(code)
        return int(ExitCode.OK)

    def to_dict(self) -> dict[str, Any]:
        """The ``-o json`` shape: ``units`` by key with ``next_at`` as ISO 8601 (UTC)."""
        return {
            "project": self.project,
            "units": {
                key: {**asdict(unit), "next_at": _iso(unit.next_at)}
                for key, unit in self.units.items()
            },
            "next_at": _iso(self.next_at),
            "api_calls": self.api_calls,
            "duration": self.duration,
        }


def _iso(t: float | None) -> str | None:
    """ISO 8601 in UTC, rounded up to the millisecond: who waits until then is never early."""
    if t is None:
        return None
    moment = _dt.datetime.fromtimestamp(math.ceil(t * 1000) / 1000, tz=_dt.timezone.utc)
    return moment.isoformat(timespec="milliseconds")


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


# A plan item's action. ``blocked``: its release is quarantined; ``pinned``: a rollback holds
# the fleet on its release (core/rollout/holds.py). Neither changes anything.
ACTIONS = ("noop", "create", "replace", "scale", "destroy", "blocked", "pinned")
NO_CHANGE = ("noop", "blocked", "pinned")


@dataclass(frozen=True)
class PlanItem:
    fleet: str
    action: str
    reasons: tuple[str, ...] = ()
    current_release: str | None = None
    release: str | None = None  # None while the fleet's image still has to be built
    image: str | None = None
    build: bool = False  # the image must be built before this item can run
    capacity: tuple[int, int, int] | None = None  # desired (min, desired, max)
    current_capacity: tuple[int, int, int] | None = None
    instances: int = 0  # instances running now
    wave: str | None = None  # the wave it rolls out in (specs with waves)
    region: str | None = None  # where the fleet's group is (Engine.plan sets it)
    key: str = ""  # the unit's key: the fleet's name, or fleet@region outside the spec's region
    # blocked or pinned: the hold (holds.describe) and the action it stands in for
    hold: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.fleet)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hold"] = dict(self.hold) if self.hold is not None else None
        return out


@dataclass(frozen=True)
class Plan:
    project: str
    items: tuple[PlanItem, ...]
    builds: tuple[str, ...] = ()  # images to build
    artifacts: Mapping[str, Artifact] = field(default_factory=dict)  # images found
    waves: tuple[Mapping[str, Any], ...] = ()  # the spec's waves, in order (see core/waves.py)

    @property
    def changes(self) -> bool:
        return any(i.action not in NO_CHANGE for i in self.items)

    def item(self, fleet: str) -> PlanItem:
        """The item of ``fleet``: its name, or ``fleet@region`` outside the spec's region."""
        for i in self.items:
            if i.key == fleet:
                return i
        raise KeyError(fleet)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "changes": self.changes,
            "builds": list(self.builds),
            "items": [i.to_dict() for i in self.items],
            "waves": [dict(w) for w in self.waves],
        }


class Capacity(TypedDict):
    min: int
    desired: int
    max: int


class InstanceCounts(TypedDict):
    in_service: int
    other: int


class _FleetStatus(TypedDict):
    fleet: str  # the unit key: ``web``, or ``web@eu-west-1`` outside the spec's region
    region: str
    exists: bool
    release: str | None
    capacity: Capacity | None
    instances: dict[str, InstanceCounts]  # release -> instances in service and not
    suspended: list[str]  # processes a rollout suspends; left suspended, they are drift
    # the unfinished rollout: id, phase, releases, error, steps, current step, waiting...
    rollout_in_progress: dict[str, Any] | None
    lock: dict[str, Any] | None  # who holds the fleet's lock, until when
    # quarantined releases and a rollback's pin (core/rollout/holds.describe): what apply
    # will not undo
    holds: list[dict[str, Any]]


class FleetStatus(_FleetStatus, total=False):
    """One fleet in one region, as ``Engine.status`` reads it from AWS and the state store
    (``immutable-sdk status -o json`` prints a list of these)."""

    traffic: dict[str, Any]  # fleets with traffic slots: weights and each slot's group
    analysis: dict[str, Any] | None  # and their last canary analysis (verdict, metrics)


class FleetHistory(TypedDict):
    """A fleet's releases and rollouts, newest first (``Engine.history``), each as the
    fields of ``ReleaseRecord`` and ``RolloutRecord``."""

    releases: list[dict[str, Any]]
    rollouts: list[dict[str, Any]]
