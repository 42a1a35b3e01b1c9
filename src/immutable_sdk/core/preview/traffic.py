"""Simulated traffic for rehearsals: what a load balancer would publish for each traffic slot.

When a canary's ``cloudwatch-metrics`` analysis starts, each slot's target group gets, for
every minute of the window (and as long again after it, for judgements that end later), its
share of ``requests_per_second`` by the weights then (``RequestCount``), that times its error
rate (``HTTPCode_Target_5XX_Count``) and a response time (``TargetResponseTime``), written to
the emulator's CloudWatch as an Application Load Balancer publishes them. The analysis then
judges real data points through the same code as on AWS.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...plugin import arn_resource
from ...units import parse_duration

MINUTE = 60
ELB_NAMESPACE = "AWS/ApplicationELB"  # where load balancers publish their metrics


@dataclass(frozen=True)
class Load:
    requests_per_second: float = 20.0
    error_rate: float = 0.0  # of the baseline (previous release)
    canary_error_rate: float = 0.0  # of the new release
    latency: float = 0.1  # seconds, both slots


def slot_dimensions(elbv2: Any, target_group: str) -> list[dict[str, str]]:
    """The TargetGroup and LoadBalancer dimensions of a target group (name or ARN)."""
    if target_group.startswith("arn:"):
        found = elbv2.describe_target_groups(TargetGroupArns=[target_group])
    else:
        found = elbv2.describe_target_groups(Names=[target_group])
    group = found["TargetGroups"][0]
    dims = [{"Name": "TargetGroup", "Value": arn_resource(group["TargetGroupArn"])}]
    balancers = group.get("LoadBalancerArns") or []
    if balancers:
        dims.append({"Name": "LoadBalancer", "Value": arn_resource(balancers[0], "loadbalancer/")})
    return dims


def publish(
    cloudwatch: Any,
    elbv2: Any,
    slots: Mapping[str, str],
    weights: Mapping[str, int],
    canary: str,
    config: Mapping[str, Any],
    now: float,
    load: Load,
    ttl: float = 0.0,
) -> dict[str, float]:
    """Write the slots' metrics for the analysis ``config`` starting at ``now``; returns the
    requests each slot gets per window (what its samples will be)."""
    window = parse_duration(config["window"])
    start = now - window
    end = now + window + ttl + 2 * MINUTE
    per_window: dict[str, float] = {}
    for slot, target_group in slots.items():
        share = int(weights.get(slot, 0)) / 100
        per_minute = load.requests_per_second * MINUTE * share
        per_window[slot] = load.requests_per_second * window * share
        if per_minute <= 0:
            continue
        errors = load.canary_error_rate if slot == canary else load.error_rate
        dims = slot_dimensions(elbv2, target_group)
        data: list[dict[str, Any]] = []
        t = start - start % MINUTE
        while t < end:
            stamp = dt.datetime.fromtimestamp(t + 1, tz=dt.timezone.utc)
            data += [
                _datum("RequestCount", dims, stamp, per_minute, "Count"),
                _datum("HTTPCode_Target_5XX_Count", dims, stamp, per_minute * errors, "Count"),
                {
                    "MetricName": "TargetResponseTime",
                    "Dimensions": dims,
                    "Timestamp": stamp,
                    "StatisticValues": {
                        "SampleCount": per_minute,
                        "Sum": per_minute * load.latency,
                        "Minimum": load.latency,
                        "Maximum": load.latency,
                    },
                    "Unit": "Seconds",
                },
            ]
            t += MINUTE
        for k in range(0, len(data), 900):
            cloudwatch.put_metric_data(Namespace=ELB_NAMESPACE, MetricData=data[k : k + 900])
    return per_window


def _datum(
    name: str, dims: list[dict[str, str]], stamp: dt.datetime, value: float, unit: str
) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": dims,
        "Timestamp": stamp,
        "Value": value,
        "Unit": unit,
    }
