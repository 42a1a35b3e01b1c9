"""The canary judge: one verdict per metric from the samples a provider read, with its reasons.

Every analysis provider is judged the same way. A metric passes when every threshold it names
holds:

* ``max``: the canary's value is at most this;
* ``max_ratio``: at most the baseline's value times this (a baseline of 0 fails any positive
  canary value);
* ``compare`` (Mann-Whitney, see ``mann_whitney``): the canary's data points are not worse
  than the baseline's with a p-value below ``alpha`` and an effect size of at least
  ``min_effect``.

A slot with fewer samples than ``min_samples`` (the canary always; the baseline when a
threshold compares with it), or fewer data points than ``compare.min_points``, makes the metric
*inconclusive*: too little traffic to tell is never a pass. A ``dry_run`` metric is judged and
reported like the others but never decides: the analysis fails when a deciding metric fails,
is inconclusive when none fails and one is inconclusive, and passes otherwise.

Each result carries the numbers it was judged on (samples, both slots' summaries, thresholds,
the test's statistics) and one sentence that says why.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...plugin import MetricSamples
from .mann_whitney import mann_whitney

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass(frozen=True)
class Comparison:
    """A metric's ``compare`` block."""

    alpha: float = 0.05
    direction: str = "increase"  # what is worse for the canary: increase or decrease
    min_effect: float = 0.64
    min_points: int = 5

    @classmethod
    def parse(cls, block: Mapping[str, Any]) -> Comparison:
        return cls(
            alpha=float(block.get("alpha", 0.05)),
            direction=str(block.get("direction", "increase")),
            min_effect=float(block.get("min_effect", 0.64)),
            min_points=int(block.get("min_points", 5)),
        )


@dataclass(frozen=True)
class MetricRule:
    """What the judge reads of a metric's block (the provider reads the rest)."""

    name: str
    block: Mapping[str, Any]
    max: float | None = None
    max_ratio: float | None = None
    min_samples: int = 1
    compare: Comparison | None = None
    dry_run: bool = False

    @classmethod
    def parse(cls, block: Mapping[str, Any], default_samples: int) -> MetricRule:
        compare = block.get("compare")
        return cls(
            name=str(block["name"]),
            block=block,
            max=float(block["max"]) if block.get("max") is not None else None,
            max_ratio=float(block["max_ratio"]) if block.get("max_ratio") is not None else None,
            min_samples=int(block.get("min_samples", default_samples)),
            compare=Comparison.parse(compare) if isinstance(compare, Mapping) else None,
            dry_run=bool(block.get("dry_run", False)),
        )

    @property
    def needs_baseline(self) -> bool:
        return self.max_ratio is not None or self.compare is not None

    def thresholds(self) -> dict[str, Any]:
        return {"max": self.max, "max_ratio": self.max_ratio, "min_samples": self.min_samples}


def summarize(samples: MetricSamples | None) -> dict[str, Any] | None:
    """The numbers of one slot: its value, samples and its data points' summary."""
    if samples is None:
        return None
    points = [float(p) for p in samples.points]
    return {
        "value": samples.value,
        "samples": samples.count,
        "points": len(points),
        "median": statistics.median(points) if points else None,
        "mean": statistics.fmean(points) if points else None,
        "min": min(points) if points else None,
        "max": max(points) if points else None,
    }


@dataclass
class MetricResult:
    name: str
    verdict: str  # pass | fail | inconclusive
    reason: str
    canary: dict[str, Any] | None
    baseline: dict[str, Any] | None
    thresholds: dict[str, Any]
    test: dict[str, Any] | None = None
    dry_run: bool = False
    detail: str = ""

    @property
    def sentence(self) -> str:
        """``name: why`` (with ``(dry run)`` after the name of a metric that does not decide)."""
        return f"{self.name}{' (dry run)' if self.dry_run else ''}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        c, b = self.canary or {}, self.baseline or {}
        return {
            "name": self.name,
            "verdict": self.verdict,
            "dry_run": self.dry_run,
            "canary": c.get("value"),
            "baseline": b.get("value"),
            "samples": {"canary": c.get("samples"), "baseline": b.get("samples")},
            "summary": {"canary": self.canary, "baseline": self.baseline},
            "thresholds": dict(self.thresholds),
            "test": self.test,
            "detail": self.detail,
            "reason": self.reason,
        }


@dataclass
class Judgement:
    verdict: str  # pass | fail | inconclusive (of the deciding metrics)
    provider: str
    start: float
    end: float
    metrics: list[MetricResult] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """Why: the deciding metrics with the verdict (all of them when none has it)."""
        deciding = [m for m in self.metrics if not m.dry_run]
        shown = [m for m in deciding if m.verdict == self.verdict] or deciding or self.metrics
        return "; ".join(m.sentence for m in shown)

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "verdict": self.verdict,
            "window": {"start": self.start, "end": self.end},
            "summary": self.summary,
            "metrics": [m.to_dict() for m in self.metrics],
        }


def judge(
    provider: str,
    rules: Sequence[MetricRule],
    answers: Sequence[tuple[MetricSamples, MetricSamples | None]],
    start: float,
    end: float,
) -> Judgement:
    """The verdict of every metric (``answers``: (canary, baseline) per rule) and of them all."""
    judgement = Judgement(PASS, provider, start, end)
    for rule, (canary, baseline) in zip(rules, answers, strict=True):
        judgement.metrics.append(judge_metric(rule, canary, baseline))
    verdicts = {m.verdict for m in judgement.metrics if not m.dry_run}
    judgement.verdict = FAIL if FAIL in verdicts else INCONCLUSIVE if verdicts - {PASS} else PASS
    return judgement


def judge_metric(
    rule: MetricRule, canary: MetricSamples, baseline: MetricSamples | None
) -> MetricResult:
    result = MetricResult(
        name=rule.name,
        verdict=PASS,
        reason="",
        canary=summarize(canary),
        baseline=summarize(baseline) if rule.needs_baseline else None,
        thresholds=rule.thresholds(),
        dry_run=rule.dry_run,
        detail=canary.detail,
    )
    missing = _missing_samples(rule, canary, baseline)
    if missing:
        return _finish(result, INCONCLUSIVE, missing)
    c = float(canary.value)  # type: ignore[arg-type]  # checked by _missing_samples
    b = baseline.value if baseline is not None else None
    failures: list[str] = []
    passes: list[str] = []
    if rule.max is not None:
        (failures if c > rule.max else passes).append(
            f"canary {c:.6g} {'>' if c > rule.max else '<='} max {rule.max:g}"
        )
    if rule.max_ratio is not None and b is not None:
        limit = b * rule.max_ratio
        worse = c > limit
        (failures if worse else passes).append(
            f"canary {c:.6g} {'>' if worse else '<='} {rule.max_ratio:g} x baseline {b:.6g}"
        )
    if rule.compare is not None and baseline is not None:
        verdict, words, result.test = _compare(rule.compare, canary, baseline)
        if verdict == INCONCLUSIVE:
            return _finish(result, INCONCLUSIVE, words)
        (failures if verdict == FAIL else passes).append(words)
    samples = f"{canary.count:g} canary samples" + (
        f", {baseline.count:g} baseline" if baseline is not None and rule.needs_baseline else ""
    )
    if failures:
        return _finish(result, FAIL, "; ".join(failures) + f" ({samples})")
    return _finish(result, PASS, "; ".join(passes) + f" ({samples})")


def _finish(result: MetricResult, verdict: str, reason: str) -> MetricResult:
    result.verdict = verdict
    detail = f"{result.detail}: " if result.detail else ""
    would = f"would {'fail' if verdict == FAIL else 'be inconclusive'}, ignored: "
    dry = would if result.dry_run and verdict != PASS else ""
    result.reason = f"{dry}{detail}{reason}"
    return result


def _missing_samples(
    rule: MetricRule, canary: MetricSamples, baseline: MetricSamples | None
) -> str | None:
    need = rule.min_samples
    if canary.count < need:
        return f"canary has {canary.count:g} of {need} samples needed"
    if canary.value is None:
        return "canary has no data in the window"
    if rule.needs_baseline:
        if baseline is None:
            return "no baseline slot to compare with"
        if baseline.count < need or (rule.max_ratio is not None and baseline.value is None):
            return f"baseline has {baseline.count:g} of {need} samples needed"
    return None


def _compare(
    compare: Comparison, canary: MetricSamples, baseline: MetricSamples
) -> tuple[str, str, dict[str, Any]]:
    """(verdict, sentence, numbers) of the Mann-Whitney comparison."""
    c, b = [float(p) for p in canary.points], [float(p) for p in baseline.points]
    numbers: dict[str, Any] = {
        "name": "mann-whitney",
        "alpha": compare.alpha,
        "direction": compare.direction,
        "min_effect": compare.min_effect,
        "points": {"canary": len(c), "baseline": len(b)},
    }
    if len(c) < compare.min_points or len(b) < compare.min_points:
        return (
            INCONCLUSIVE,
            f"Mann-Whitney needs {compare.min_points} data points per slot, got {len(c)} "
            f"canary and {len(b)} baseline",
            numbers,
        )
    test = mann_whitney(c, b)
    higher = compare.direction == "increase"
    p = test.p_greater if higher else test.p_less
    effect = test.effect if higher else 1 - test.effect
    numbers.update(u=test.u, p_value=p, effect=effect, method=test.method)
    worse = "higher" if higher else "lower"
    medians = f"medians {statistics.median(c):.6g} vs {statistics.median(b):.6g}"
    if p < compare.alpha and effect >= compare.min_effect:
        return (
            FAIL,
            f"canary {worse} than baseline: Mann-Whitney p={p:.3g} < {compare.alpha:g} and "
            f"effect A={effect:.2f} >= {compare.min_effect:g} ({medians})",
            numbers,
        )
    why = (
        f"p={p:.3g} >= {compare.alpha:g}"
        if p >= compare.alpha
        else f"effect A={effect:.2f} < {compare.min_effect:g}"
    )
    return PASS, f"canary not significantly {worse} than baseline: {why} ({medians})", numbers
