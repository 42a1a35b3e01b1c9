"""The canary analyses of a rollout's report: every judgement of each metric, from the journal's
``analysis`` notes (values, samples, thresholds), and each analysis step's verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..state.base import JournalEntry, RolloutRecord


@dataclass(frozen=True)
class MetricPoint:
    at: float
    canary: float | None
    baseline: float | None
    canary_samples: float
    baseline_samples: float
    verdict: str
    reason: str


@dataclass(frozen=True)
class MetricSeries:
    name: str
    max: float | None
    max_ratio: float | None
    min_samples: int | None
    points: tuple[MetricPoint, ...]

    @property
    def verdict(self) -> str:
        return self.points[-1].verdict if self.points else "not judged"

    @property
    def reason(self) -> str:
        return self.points[-1].reason if self.points else ""


@dataclass(frozen=True)
class AnalysisReport:
    step: int  # journal step index
    verdict: str  # pass | fail | inconclusive | promoted | not judged
    metrics: tuple[MetricSeries, ...]
    alarms: Mapping[str, str] = field(default_factory=dict)  # alarm analyses: last states


def analyses(
    record: RolloutRecord, journal: Sequence[JournalEntry], t0: float
) -> tuple[AnalysisReport, ...]:
    by_step: dict[int, list[Mapping[str, Any]]] = {}
    alarms: dict[int, dict[str, str]] = {}
    verdicts: dict[int, str] = {}
    kinds = {i: s.get("kind") for i, s in enumerate(record.steps)}
    for e in journal:
        if e.status == "started" and e.step_index >= 0:
            kinds[e.step_index] = e.data.get("kind")
        if e.status == "note" and e.data.get("note") == "analysis":
            by_step.setdefault(e.step_index, []).append({**e.data, "at": e.at - t0})
        elif e.status == "note" and e.data.get("note") == "alarms":
            alarms[e.step_index] = {str(k): str(v) for k, v in dict(e.data["alarms"]).items()}
        elif e.status == "finished" and kinds.get(e.step_index) == "analysis":
            if "verdict" in e.data:
                verdicts[e.step_index] = str(e.data["verdict"])
            elif e.data.get("ended_by") == "promote":
                verdicts[e.step_index] = "promoted"
            elif "alarms" in e.data:
                verdicts[e.step_index] = "pass"
                alarms[e.step_index] = {str(k): str(v) for k, v in e.data["alarms"].items()}
        elif e.status == "failed" and kinds.get(e.step_index) == "analysis":
            verdicts[e.step_index] = "fail"
    out = []
    for step in sorted(set(by_step) | set(alarms) | set(verdicts)):
        judgements = by_step.get(step, [])
        last = judgements[-1] if judgements else {}
        verdict = verdicts.get(step) or str(last.get("verdict", "not judged"))
        out.append(
            AnalysisReport(
                step=step,
                verdict=verdict,
                metrics=_metrics(judgements),
                alarms=alarms.get(step, {}),
            )
        )
    return tuple(out)


def _metrics(judgements: Sequence[Mapping[str, Any]]) -> tuple[MetricSeries, ...]:
    names: list[str] = []
    points: dict[str, list[MetricPoint]] = {}
    limits: dict[str, Mapping[str, Any]] = {}
    for j in judgements:
        limits.update(dict(j.get("thresholds") or {}))
        for m in j.get("metrics") or ():
            name = str(m["name"])
            if m.get("thresholds"):  # each metric's own (the judge's journal entries)
                limits[name] = dict(m["thresholds"])
            if name not in points:
                names.append(name)
                points[name] = []
            samples = dict(m.get("samples") or {})
            points[name].append(
                MetricPoint(
                    at=float(j["at"]),
                    canary=_float_or_none(m.get("canary")),
                    baseline=_float_or_none(m.get("baseline")),
                    canary_samples=float(samples.get("canary") or 0),
                    baseline_samples=float(samples.get("baseline") or 0),
                    verdict=str(m.get("verdict", "")),
                    reason=str(m.get("reason", "")),
                )
            )
    return tuple(
        MetricSeries(
            name=name,
            max=_float_or_none(limits.get(name, {}).get("max")),
            max_ratio=_float_or_none(limits.get(name, {}).get("max_ratio")),
            min_samples=_int_or_none(limits.get(name, {}).get("min_samples")),
            points=tuple(points[name]),
        )
        for name in names
    )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
