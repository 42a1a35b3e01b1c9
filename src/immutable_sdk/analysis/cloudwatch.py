"""The CloudWatch analysis providers: ``cloudwatch-metrics`` and ``cloudwatch-alarm``.

``cloudwatch-metrics`` reads every metric of a judgement, for both slots, in ONE
``GetMetricData`` call (paged; 500 queries a call), with a single period covering the window
(a metric with ``compare`` is read per minute, so that the test has data points):

* preset ``5xx-rate``: HTTPCode_Target_5XX_Count / RequestCount of the slot's target group
  (missing 5xx data points count as 0, as the load balancer publishes none when there are
  none); its samples are the requests, its data points the per-period rates;
* preset ``p99-latency``: TargetResponseTime, statistic p99; samples: its SampleCount;
* any metric: ``namespace``, ``metric``, ``statistic`` and ``dimensions`` (default TargetGroup
  and LoadBalancer of the slot); samples: the metric's SampleCount.

Values over several data points combine as the statistic does: sums add up, averages are
weighted by sample counts, minimum and maximum take the extreme; a percentile takes the
highest (the conservative choice, exact when the window is one period).

``cloudwatch-alarm`` watches named alarms (metric or composite) for ``duration``, read every
``interval`` (default 10s): each alarm is a metric whose value is 1 when it is in ALARM or
does not exist, else 0, with ``max: 0``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from immutable_sdk.plugin import (
    AnalysisProviderFactory,
    MetricQuery,
    MetricSamples,
    PluginContext,
    Registry,
    analysis_schema,
    hookimpl,
    parse_duration,
)

ELB_NAMESPACE = "AWS/ApplicationELB"
DEFAULT_DIMENSIONS = {"TargetGroup": "{target_group}", "LoadBalancer": "{load_balancer}"}
STATISTIC = {
    "type": "string",
    "pattern": r"^(SampleCount|Average|Sum|Minimum|Maximum|p\d{1,2}(\.\d+)?)$",
    "x-expect": "a statistic: Average, Sum, Minimum, Maximum, SampleCount or a percentile like p99",
    "description": "The CloudWatch statistic judged (Average, Maximum, p99...).",
}
METRICS_SCHEMA = analysis_schema(
    "cloudwatch-metrics",
    description="Compare the new slot with the previous one on CloudWatch metrics.",
    metric={
        "preset": {
            "enum": ["5xx-rate", "p99-latency"],
            "description": "5xx-rate: HTTPCode_Target_5XX_Count / RequestCount of the slot's "
            "target group (samples: requests); p99-latency: TargetResponseTime p99 (samples: "
            "its sample count).",
        },
        "namespace": {
            "type": "string",
            "description": "CloudWatch namespace (AWS/ApplicationELB).",
        },
        "metric": {"type": "string", "description": "CloudWatch metric name."},
        "statistic": STATISTIC,
        "dimensions": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Dimensions; values may use {target_group}, {load_balancer} (the "
            "slot's, as CloudWatch names them), {auto_scaling_group}, {slot} and {fleet}. "
            "Default: TargetGroup and LoadBalancer of the slot.",
        },
    },
)
ALARM_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "description": "Watch CloudWatch alarms while the new slot serves: one in ALARM (or "
    "missing) fails the step.",
    "properties": {
        "type": {"const": "cloudwatch-alarm", "description": "Selects this provider."},
        "alarms": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "description": "Alarm names; any in ALARM fails the step.",
        },
        "duration": {
            "type": ["string", "number"],
            "format": "positive-duration",
            "description": "How long to watch (plus what is left of the record's TTL).",
        },
        "interval": {
            "type": ["string", "number"],
            "format": "positive-duration",
            "description": "Time between two reads of the alarms (default 10s).",
        },
        "dry_run": {
            "type": "boolean",
            "description": "Report the alarms but never fail on them (default false).",
        },
    },
    "required": ["type", "alarms", "duration"],
    "additionalProperties": False,
}


def _series(metric: Mapping[str, Any]) -> tuple[str, list[tuple[str, str, str]]]:
    """(kind, [(namespace, metric, statistic)]): kind "ratio" is the first over the second,
    "stat" the first with the second (SampleCount) as its samples."""
    preset = metric.get("preset")
    if preset == "5xx-rate":
        return "ratio", [
            (ELB_NAMESPACE, "HTTPCode_Target_5XX_Count", "Sum"),
            (ELB_NAMESPACE, "RequestCount", "Sum"),
        ]
    if preset == "p99-latency":
        namespace, name, stat = ELB_NAMESPACE, "TargetResponseTime", "p99"
    else:
        namespace = str(metric.get("namespace", ELB_NAMESPACE))
        name, stat = str(metric["metric"]), str(metric.get("statistic", "Average"))
    return "stat", [(namespace, name, stat), (namespace, name, "SampleCount")]


class CloudWatchMetrics:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.window = parse_duration(config["window"])

    def samples(self, queries: Sequence[MetricQuery], ctx: PluginContext) -> list[MetricSamples]:
        if not queries:
            return []
        whole = max(60, math.ceil(self.window / 60) * 60)
        requests: list[dict[str, Any]] = []
        for i, q in enumerate(queries):
            dims = q.metric.get("dimensions") or DEFAULT_DIMENSIONS
            period = 60 if q.metric.get("compare") else whole
            for j, (namespace, name, stat) in enumerate(_series(q.metric)[1]):
                metric = {
                    "Namespace": namespace,
                    "MetricName": name,
                    "Dimensions": [{"Name": k, "Value": q.slot.fill(v)} for k, v in dims.items()],
                }
                requests.append(
                    {
                        "Id": f"q{i}s{j}",
                        "MetricStat": {"Metric": metric, "Period": period, "Stat": stat},
                    }
                )
        start, end = queries[0].start, queries[0].end
        data = ctx.metric_data(requests, start, end)
        return [self._answer(q, data[f"q{i}s0"], data[f"q{i}s1"]) for i, q in enumerate(queries)]

    @staticmethod
    def _answer(
        q: MetricQuery, first: list[tuple[float, float]], second: list[tuple[float, float]]
    ) -> MetricSamples:
        kind, series = _series(q.metric)
        if kind == "ratio":
            errors = dict(first)
            requests = sum(v for _, v in second)
            points = [errors.get(t, 0.0) / n for t, n in second if n > 0]
            value = sum(errors.values()) / requests if requests > 0 else None
            return MetricSamples(value, requests, points)
        samples = sum(v for _, v in second)
        return MetricSamples(combine(series[0][2], first, second), samples, [v for _, v in first])


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


class CloudWatchAlarms:
    """Each alarm is a metric: 1 when in ALARM or missing, else 0; ``max: 0``."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        names = list(dict.fromkeys(str(a) for a in config["alarms"]))
        dry_run = bool(config.get("dry_run", False))
        self.metrics = [
            {"name": n, "alarm": n, "max": 0, "min_samples": 1, "dry_run": dry_run} for n in names
        ]
        self.interval = parse_duration(config.get("interval", "10s"))

    def samples(self, queries: Sequence[MetricQuery], ctx: PluginContext) -> list[MetricSamples]:
        names = [str(q.metric["alarm"]) for q in queries]
        states = ctx.alarm_states(names)
        out = []
        for name in names:
            state = states.get(name, "MISSING")
            firing = state in ("ALARM", "MISSING")
            detail = "alarm does not exist" if state == "MISSING" else f"alarm {state}"
            out.append(MetricSamples(1.0 if firing else 0.0, 1, (), detail))
        return out


@hookimpl
def immutable_sdk_add_analysis_providers(registry: Registry[AnalysisProviderFactory]) -> None:
    registry.add(
        "cloudwatch-metrics",
        CloudWatchMetrics,
        schema=METRICS_SCHEMA,
        description="Compare the new slot with the previous one on CloudWatch metrics "
        "(one GetMetricData call per judgement).",
    )
    registry.add(
        "cloudwatch-alarm",
        CloudWatchAlarms,
        schema=ALARM_SCHEMA,
        description="Named CloudWatch alarms must not fire while the new slot serves.",
    )
