"""CloudWatch reads: metric data over a window (batched, paged) and alarm states.

``metric_data`` sends every query of a judgement in as few ``GetMetricData`` calls as the API
allows (500 queries a call) and follows ``NextToken`` to the last page; ``alarm_states`` reads
named alarms (metric and composite) 100 names a call. Plugins reach both through their
context (``ctx.metric_data``, ``ctx.alarm_states``: ``core.context``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from .session import aws_errors

MAX_QUERIES = 500  # GetMetricData's limit per call
MAX_ALARM_NAMES = 100  # DescribeAlarms' limit per call

Series = list[tuple[float, float]]  # (epoch seconds, value), in the order CloudWatch returns


def metric_data(
    cloudwatch: Any, queries: Sequence[Mapping[str, Any]], start: float, end: float
) -> dict[str, Series]:
    """Every query's data points between ``start`` and ``end`` (epoch seconds), by query Id.

    ``queries`` are ``MetricDataQueries`` entries (each with a unique ``Id``).
    """
    out: dict[str, Series] = {str(q["Id"]): [] for q in queries}
    begin = dt.datetime.fromtimestamp(start, tz=dt.timezone.utc)
    finish = dt.datetime.fromtimestamp(end, tz=dt.timezone.utc)
    with aws_errors("reading metrics from CloudWatch"):
        for k in range(0, len(queries), MAX_QUERIES):
            args: dict[str, Any] = {
                "MetricDataQueries": [dict(q) for q in queries[k : k + MAX_QUERIES]],
                "StartTime": begin,
                "EndTime": finish,
            }
            while True:
                page = cloudwatch.get_metric_data(**args)
                for r in page.get("MetricDataResults", []):
                    stamps = [t.timestamp() for t in r.get("Timestamps", [])]
                    values = [float(v) for v in r.get("Values", [])]
                    out.setdefault(str(r["Id"]), []).extend(zip(stamps, values, strict=False))
                token = page.get("NextToken")
                if not token:
                    break
                args["NextToken"] = token
    return out


def alarm_states(cloudwatch: Any, names: Sequence[str]) -> dict[str, str]:
    """Alarm -> state (OK, ALARM, INSUFFICIENT_DATA; MISSING when it does not exist)."""
    states = dict.fromkeys(names, "MISSING")
    unique = list(states)
    with aws_errors("describing CloudWatch alarms"):
        for k in range(0, len(unique), MAX_ALARM_NAMES):
            out = cloudwatch.describe_alarms(
                AlarmNames=unique[k : k + MAX_ALARM_NAMES],
                AlarmTypes=["MetricAlarm", "CompositeAlarm"],
            )
            for alarm in [*out.get("MetricAlarms", []), *out.get("CompositeAlarms", [])]:
                states[str(alarm["AlarmName"])] = str(alarm.get("StateValue", "INSUFFICIENT_DATA"))
    return states
