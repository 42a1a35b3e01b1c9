"""Canary analysis: judge the new slot against the previous one on CloudWatch metrics.

``cloudwatch-metrics`` compares the canary slot (the new release) with the baseline slot (the
previous release, which serves the rest of the traffic) over a window that ends when it
judges. Each metric is read for both slots in ONE ``GetMetricData`` call per judgement (all
metrics, both slots), with a single period covering the window:

* preset ``5xx-rate``: HTTPCode_Target_5XX_Count / RequestCount of the slot's target group
  (missing 5xx data points count as 0, as the load balancer publishes none when there are
  none); its samples are the requests;
* preset ``p99-latency``: TargetResponseTime, statistic p99; samples: its SampleCount;
* any metric: ``namespace``, ``metric``, ``statistic`` and ``dimensions`` (default TargetGroup
  and LoadBalancer of the slot); samples: the metric's SampleCount.

A metric passes when every threshold it names holds: ``max`` (the canary's value is at most
this) and ``max_ratio`` (at most the baseline's value times this; with a baseline of 0, any
positive canary value fails it). A slot with fewer samples than ``min_samples`` (the canary
always; the baseline when ``max_ratio`` compares with it) makes the metric *inconclusive*: too
little traffic to tell is never a pass. The analysis fails when any metric fails, is
inconclusive when none fails and any is inconclusive, and passes otherwise. Every result lists
the numbers it was judged on.

Values over several data points combine as the statistic does: sums add up, averages are
weighted by sample counts, minimum and maximum take the extreme; a percentile takes the
highest (the conservative choice, exact when the window is one period).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...aws.metrics import metric_data
from ...units import parse_duration

ELB_NAMESPACE = "AWS/ApplicationELB"
DEFAULT_DIMENSIONS = {"TargetGroup": "{target_group}", "LoadBalancer": "{load_balancer}"}


@dataclass(frozen=True)
class SlotRef:
    """A slot as CloudWatch names it: dimension values of its target group and group."""

    slot: str
    target_group: str  # targetgroup/name/id
    load_balancer: str  # app/name/id ("" when unknown)
    auto_scaling_group: str

    def fill(self, template: str) -> str:
        return template.format(
            target_group=self.target_group,
            load_balancer=self.load_balancer,
            auto_scaling_group=self.auto_scaling_group,
            slot=self.slot,
        )


def arn_suffix(arn: str, marker: str) -> str:
    """``arn:...:targetgroup/web/0123`` -> ``targetgroup/web/0123`` (CloudWatch's dimension)."""
    resource = arn.split(":", 5)[-1]
    if marker == "loadbalancer/" and resource.startswith(marker):
        return resource[len(marker) :]
    return resource


@dataclass(frozen=True)
class Query:
    """One series: a metric of one slot with one statistic."""

    namespace: str
    metric: str
    statistic: str
    dimensions: Mapping[str, str]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    value: tuple[Query, ...]  # the series that make the value (errors, requests) per slot
    kind: str  # "ratio" (value[0] / value[1]) or "stat"
    max: float | None
    max_ratio: float | None
    min_samples: int

    @classmethod
    def parse(cls, block: Mapping[str, Any], default_samples: int) -> MetricSpec:
        preset = block.get("preset")
        dims = dict(block.get("dimensions") or DEFAULT_DIMENSIONS)
        if preset == "5xx-rate":
            kind = "ratio"
            value: tuple[Query, ...] = (
                Query(ELB_NAMESPACE, "HTTPCode_Target_5XX_Count", "Sum", dims),
                Query(ELB_NAMESPACE, "RequestCount", "Sum", dims),
            )
        else:
            if preset == "p99-latency":
                namespace, metric, stat = ELB_NAMESPACE, "TargetResponseTime", "p99"
            else:
                namespace = str(block.get("namespace", ELB_NAMESPACE))
                metric, stat = str(block["metric"]), str(block.get("statistic", "Average"))
            kind = "stat"
            value = (
                Query(namespace, metric, stat, dims),
                Query(namespace, metric, "SampleCount", dims),
            )
        return cls(
            name=str(block["name"]),
            value=value,
            kind=kind,
            max=float(block["max"]) if block.get("max") is not None else None,
            max_ratio=float(block["max_ratio"]) if block.get("max_ratio") is not None else None,
            min_samples=int(block.get("min_samples", default_samples)),
        )


@dataclass
class MetricResult:
    name: str
    verdict: str  # pass | fail | inconclusive
    canary: float | None
    baseline: float | None
    samples: dict[str, float]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "canary": self.canary,
            "baseline": self.baseline,
            "samples": dict(self.samples),
            "reason": self.reason,
        }


@dataclass
class Judgement:
    verdict: str  # pass | fail | inconclusive
    start: float
    end: float
    metrics: list[MetricResult] = field(default_factory=list)

    @property
    def summary(self) -> str:
        shown = [m for m in self.metrics if m.verdict == self.verdict] or self.metrics
        return "; ".join(f"{m.name}: {m.reason}" for m in shown)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "window": {"start": self.start, "end": self.end},
            "metrics": [m.to_dict() for m in self.metrics],
        }


class MetricsAnalysis:
    """The ``cloudwatch-metrics`` analysis of one canary step (config validated by the spec)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.window = parse_duration(config["window"])
        interval = config.get("interval")
        self.interval = parse_duration(interval) if interval is not None else self.window
        self.on_inconclusive = str(config.get("inconclusive", "pause"))
        samples = int(config.get("min_samples", 1))
        self.metrics = [MetricSpec.parse(m, samples) for m in config["metrics"]]

    def judge(self, cloudwatch: Any, canary: SlotRef, baseline: SlotRef, end: float) -> Judgement:
        """Read every series of both slots over ``window`` seconds ending at ``end``; judge."""
        period = max(60, math.ceil(self.window / 60) * 60)
        start = end - self.window
        series = self._read(cloudwatch, canary, baseline, start, end, period)
        judgement = Judgement("pass", start, end)
        for i, metric in enumerate(self.metrics):
            c = self._value(metric, series, f"m{i}c")
            b = self._value(metric, series, f"m{i}b")
            judgement.metrics.append(self._verdict(metric, c, b))
        verdicts = {m.verdict for m in judgement.metrics}
        judgement.verdict = (
            "fail"
            if "fail" in verdicts
            else "inconclusive"
            if "inconclusive" in verdicts
            else "pass"
        )
        return judgement

    def _read(
        self,
        cloudwatch: Any,
        canary: SlotRef,
        baseline: SlotRef,
        start: float,
        end: float,
        period: int,
    ) -> dict[str, list[tuple[float, float]]]:
        queries: list[dict[str, Any]] = []
        for i, metric in enumerate(self.metrics):
            for tag, slot in (("c", canary), ("b", baseline)):
                for j, q in enumerate(metric.value):
                    dims = [{"Name": k, "Value": slot.fill(v)} for k, v in q.dimensions.items()]
                    queries.append(
                        {
                            "Id": f"m{i}{tag}q{j}",
                            "MetricStat": {
                                "Metric": {
                                    "Namespace": q.namespace,
                                    "MetricName": q.metric,
                                    "Dimensions": dims,
                                },
                                "Period": period,
                                "Stat": q.statistic,
                            },
                        }
                    )
        return metric_data(cloudwatch, queries, start, end)

    @staticmethod
    def _value(
        metric: MetricSpec, series: Mapping[str, Sequence[tuple[float, float]]], prefix: str
    ) -> tuple[float | None, float]:
        """(value, samples) of one slot."""
        first = series.get(f"{prefix}q0", [])
        second = series.get(f"{prefix}q1", [])
        if metric.kind == "ratio":
            errors = sum(v for _, v in first)
            requests = sum(v for _, v in second)
            return (errors / requests if requests > 0 else None), requests
        samples = sum(v for _, v in second)
        return combine(metric.value[0].statistic, first, second), samples

    @staticmethod
    def _verdict(
        metric: MetricSpec, canary: tuple[float | None, float], baseline: tuple[float | None, float]
    ) -> MetricResult:
        (c, cn), (b, bn) = canary, baseline
        result = MetricResult(metric.name, "pass", c, b, {"canary": cn, "baseline": bn}, "")
        need = metric.min_samples
        compared = metric.max_ratio is not None
        if cn < need or c is None:
            result.verdict = "inconclusive"
            result.reason = f"canary has {cn:g} of {need} samples needed"
            return result
        if compared and (bn < need or b is None):
            result.verdict = "inconclusive"
            result.reason = f"baseline has {bn:g} of {need} samples needed"
            return result
        failures = []
        if metric.max is not None and c > metric.max:
            failures.append(f"canary {c:.6g} > max {metric.max:g}")
        if metric.max_ratio is not None and b is not None and c > b * metric.max_ratio:
            failures.append(f"canary {c:.6g} > {metric.max_ratio:g} x baseline {b:.6g}")
        if failures:
            result.verdict = "fail"
            result.reason = "; ".join(failures) + f" ({cn:g} canary samples)"
        else:
            base = f", baseline {b:.6g}" if b is not None else ""
            result.reason = f"canary {c:.6g}{base} within thresholds ({cn:g} samples)"
        return result


def combine(
    statistic: str,
    values: Sequence[tuple[float, float]],
    counts: Sequence[tuple[float, float]],
) -> float | None:
    """One value from several data points of ``statistic`` (see the module docstring)."""
    if not values:
        return None
    numbers = [v for _, v in values]
    if statistic in ("Sum", "SampleCount"):
        return sum(numbers)
    if statistic == "Minimum":
        return min(numbers)
    if statistic == "Average":
        weight = dict(counts)
        total = sum(weight.get(t, 0.0) for t, _ in values)
        if total <= 0:
            return sum(numbers) / len(numbers)
        return sum(v * weight.get(t, 0.0) for t, v in values) / total
    return max(numbers)  # Maximum and percentiles
