"""A rollout's report, built from its journal alone (what ``core/rollout/samples.py`` wrote).

``RolloutReport.build`` reads a rollout record, its journal entries and the other rollouts of
the same apply (same owner, overlapping in time), and returns what the pictures show: the
steps with their results, the traffic weights and the capacity over time, each canary
analysis's judgements, and the apply's units over time by wave and region. Times are seconds
since the rollout started.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import StateError
from ..lifecycle import step_from_dict
from ..state.base import JournalEntry, RolloutRecord
from .analysis import AnalysisReport, MetricPoint, MetricSeries, analyses

__all__ = [
    "AnalysisReport",
    "CapacityPoint",
    "MetricPoint",
    "MetricSeries",
    "RolloutReport",
    "StepRow",
    "UnitSpan",
    "WeightPoint",
]


@dataclass(frozen=True)
class StepRow:
    index: int
    kind: str
    text: str
    start: float | None  # seconds since the rollout started; None: never started
    end: float | None  # None: not finished (running, or never started)
    status: str  # ok | failed | skipped | running | not run
    detail: str  # the step's result in words (gate checks, analysis verdict, error)
    rollback: bool = False  # a step of the rollback, after the planned ones
    checks: Mapping[str, str] = field(default_factory=dict)  # gate: check -> status
    label: str = ""  # how people number it: 1, 2, ... for the plan; r1, r2, ... for a rollback


@dataclass(frozen=True)
class CapacityPoint:
    at: float
    desired: int
    in_service: int
    healthy: int


@dataclass(frozen=True)
class WeightPoint:
    at: float
    weights: Mapping[str, int]


@dataclass(frozen=True)
class UnitSpan:
    """One unit (fleet in a region) of the apply this rollout was part of."""

    key: str
    region: str
    wave: str
    rollout: str
    start: float
    end: float | None
    outcome: str


@dataclass(frozen=True)
class RolloutReport:
    project: str
    rollout: str
    fleet: str
    strategy: str
    from_release: str | None
    to_release: str
    phase: str
    outcome: str | None
    error: str | None
    started_at: float  # epoch seconds
    duration: float | None  # seconds; None while running
    region: str | None
    steps: tuple[StepRow, ...]
    capacity: tuple[CapacityPoint, ...]
    weights: tuple[WeightPoint, ...]
    slots: tuple[str, ...]
    limits: Mapping[str, int]  # min, desired, max of the fleet
    min_healthy: int | None
    analyses: tuple[AnalysisReport, ...]
    units: tuple[UnitSpan, ...]  # the apply's units (this one among them); empty: alone

    @property
    def end(self) -> float:
        """The last moment the report knows of (seconds since the start)."""
        times = [0.0, self.duration or 0.0]
        times += [s.end or s.start or 0.0 for s in self.steps]
        times += [p.at for p in self.capacity] + [p.at for p in self.weights]
        return max(times)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def build(
        cls,
        project: str,
        record: RolloutRecord,
        journal: Sequence[JournalEntry],
        siblings: Sequence[RolloutRecord] = (),
        waves: Mapping[str, str] | None = None,
        home_region: str | None = None,
    ) -> RolloutReport:
        """The report of ``record`` from its ``journal``. ``siblings``: the other rollouts of
        the same apply; ``waves``: unit key -> wave name; ``home_region``: the spec's region
        (units without ``@region`` deploy there)."""
        t0 = record.started_at
        context = _last_note(journal, "context")
        steps = _steps(record, journal, t0)
        return cls(
            project=project,
            rollout=record.id,
            fleet=record.fleet,
            strategy=record.strategy,
            from_release=record.from_release,
            to_release=record.to_release,
            phase=record.phase,
            outcome=record.outcome,
            error=record.error,
            started_at=t0,
            duration=None if record.finished_at is None else record.finished_at - t0,
            region=str(context.get("region")) if context.get("region") else home_region,
            steps=steps,
            capacity=_capacity(journal, t0),
            weights=_weights(journal, t0),
            slots=tuple(str(s) for s in context.get("slots") or ()),
            limits={k: int(v) for k, v in dict(context.get("capacity") or {}).items()},
            min_healthy=_int_or_none(context.get("min_healthy")),
            analyses=analyses(record, journal, t0),
            units=_units(record, siblings, waves or {}, home_region),
        )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _last_note(journal: Sequence[JournalEntry], note: str) -> Mapping[str, Any]:
    found: Mapping[str, Any] = {}
    for entry in journal:
        if entry.status == "note" and entry.data.get("note") == note:
            found = entry.data
    return found


def describe(step: Mapping[str, Any]) -> str:
    try:
        return step_from_dict(step).describe()
    except StateError:
        return str(step.get("kind", "step"))


def _steps(
    record: RolloutRecord, journal: Sequence[JournalEntry], t0: float
) -> tuple[StepRow, ...]:
    """The planned steps, then the rollback's. A rollback goes on with the journal's step
    indexes after the failed step, so a step started after a failure is the rollback's (and a
    planned step at that index never ran)."""
    forward: dict[int, list[JournalEntry]] = {}
    back: dict[int, list[JournalEntry]] = {}
    failed = False
    for entry in journal:
        if entry.step_index < 0:
            continue
        if entry.status == "started":
            (back if failed else forward)[entry.step_index] = [entry]  # run again: the last
        elif entry.status in ("finished", "failed"):
            runs = back if entry.step_index in back else forward
            if entry.step_index in runs:
                runs[entry.step_index].append(entry)
            if entry.status == "failed":
                failed = True
    rows = []
    planned = [dict(s) for s in record.steps]
    for index in sorted(set(range(len(planned))) | set(forward)):
        run = forward.get(index)
        step = dict(run[0].data) if run else planned[index]
        rows.append(_row(index, step, run, t0, rollback=False))
    for number, index in enumerate(sorted(back), start=1):
        run = back[index]
        rows.append(_row(index, dict(run[0].data), run, t0, rollback=True, label=f"r{number}"))
    return tuple(rows)


def _row(
    index: int,
    step: Mapping[str, Any],
    run: Sequence[JournalEntry] | None,
    t0: float,
    *,
    rollback: bool,
    label: str = "",
) -> StepRow:
    begin = run[0] if run else None
    end = run[-1] if run and len(run) > 1 else None
    status, detail, checks = _outcome(step, begin, end)
    return StepRow(
        index=index,
        kind=str(step.get("kind", "step")),
        text=describe(step),
        start=begin.at - t0 if begin else None,
        end=end.at - t0 if end else None,
        status=status,
        detail=detail,
        rollback=rollback,
        checks=checks,
        label=label or str(index + 1),
    )


def _outcome(
    step: Mapping[str, Any], begin: JournalEntry | None, end: JournalEntry | None
) -> tuple[str, str, dict[str, str]]:
    if begin is None:
        return "not run", "", {}
    if end is None:
        return "running", "", {}
    data = end.data
    if end.status == "failed":
        return "failed", str(data.get("error", "failed")), {}
    if "skipped" in data:
        return "skipped", f"skipped: {data['skipped']}", {}
    checks = {str(k): str(v) for k, v in dict(data.get("checks") or {}).items()}
    if checks:
        return "ok", ", ".join(f"{k} {v}" for k, v in checks.items()), checks
    if "verdict" in data:
        return "ok", f"analysis {data['verdict']}", {}
    if data.get("ended_by") == "promote" or data.get("promoted_by"):
        return "ok", "ended by an operator's promote", {}
    if "alarms" in data:
        states = dict(data["alarms"])
        return "ok", ", ".join(f"{k} {v}" for k, v in states.items()) or "no alarms", {}
    if "weights" in data:
        weights = dict(data["weights"])
        return "ok", ", ".join(f"{k} {v}%" for k, v in weights.items()), {}
    if "launched" in data:
        return "ok", f"{len(data['launched'])} launched", {}
    if "retired" in data:
        return "ok", f"{len(data['retired'])} retired", {}
    return "ok", "", {}


def _capacity(journal: Sequence[JournalEntry], t0: float) -> tuple[CapacityPoint, ...]:
    return tuple(
        CapacityPoint(
            at=e.at - t0,
            desired=int(e.data.get("desired", 0)),
            in_service=int(e.data.get("in_service", 0)),
            healthy=int(e.data.get("healthy", 0)),
        )
        for e in journal
        if e.status == "note" and e.data.get("note") == "capacity"
    )


def _weights(journal: Sequence[JournalEntry], t0: float) -> tuple[WeightPoint, ...]:
    """Weights as observed (capacity samples of slot fleets) and as written (shift steps)."""
    points: list[WeightPoint] = []
    for e in journal:
        weights: dict[str, int] | None = None
        if e.status == "note" and e.data.get("note") == "capacity" and e.data.get("slots"):
            slots = dict(e.data["slots"])
            weights = {str(k): int(dict(v).get("weight", 0)) for k, v in slots.items()}
        elif e.status == "finished" and isinstance(e.data.get("weights"), Mapping):
            weights = {str(k): int(v) for k, v in e.data["weights"].items()}
        if weights is None:
            continue
        if points and points[-1].weights == weights:
            continue
        points.append(WeightPoint(e.at - t0, weights))
    return tuple(points)


def _units(
    record: RolloutRecord,
    siblings: Sequence[RolloutRecord],
    waves: Mapping[str, str],
    home_region: str | None,
) -> tuple[UnitSpan, ...]:
    if not siblings:
        return ()
    t0 = record.started_at
    spans = []
    for r in sorted({s.id: s for s in (*siblings, record)}.values(), key=lambda s: s.started_at):
        _, _, region = r.fleet.partition("@")
        spans.append(
            UnitSpan(
                key=r.fleet,
                region=region or home_region or "",
                wave=waves.get(r.fleet, ""),
                rollout=r.id,
                start=r.started_at - t0,
                end=None if r.finished_at is None else r.finished_at - t0,
                outcome=r.outcome or r.phase,
            )
        )
    return tuple(spans)
