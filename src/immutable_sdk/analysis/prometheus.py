"""The ``prometheus`` analysis provider: PromQL over Prometheus's HTTP API.

Each metric's ``query`` runs as ``/api/v1/query_range`` over the window, once per judged slot,
with ``{slot}``, ``{role}``, ``{fleet}``, ``{release}``, ``{region}``,
``{auto_scaling_group}``, ``{target_group}``, ``{load_balancer}`` (see ``AnalysisSlot.fill``),
``{window}`` and ``{step}`` (PromQL durations like ``300s``) replaced. Every value of every
series returned at every step is a data point (NaN and infinities are left out and counted in
the detail); the metric's value is their ``aggregate`` (mean by default). Its samples are the
value of ``samples_query`` at the end of the window (say, the slot's requests) when given, else
the number of data points.

The same API serves Amazon Managed Service for Prometheus: with ``sigv4`` each request is
signed with AWS Signature Version 4 for the service ``aps`` with the SDK's credentials. Every
request has one total deadline (``timeout``); a failed one is tried twice more, a second apart
on the SDK's clock, then the step fails: a canary that cannot be judged does not go on.
"""

from __future__ import annotations

import json
import math
import statistics
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from immutable_sdk.plugin import (
    AnalysisProviderFactory,
    GateFailed,
    MetricQuery,
    MetricSamples,
    PluginContext,
    Registry,
    analysis_schema,
    hookimpl,
    http_request,
    parse_duration,
)

ATTEMPTS = 3
MAX_BODY = 8 * 1024 * 1024  # a query_range answer of a few series over a window
AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "mean": statistics.fmean,
    "median": statistics.median,
    "max": max,
    "min": min,
    "last": lambda points: points[-1],
    "sum": math.fsum,
}
DURATION = {"type": ["string", "number"], "format": "duration"}
SCHEMA = analysis_schema(
    "prometheus",
    description="Compare the new slot with the previous one on PromQL queries (Prometheus, "
    "or Amazon Managed Service for Prometheus with sigv4).",
    properties={
        "url": {
            "type": "string",
            "pattern": "^https?://",
            "x-expect": "an http:// or https:// URL",
            "description": "The server's base URL (http://127.0.0.1:9090, or an AMP "
            "workspace's https://aps-workspaces.REGION.amazonaws.com/workspaces/ID).",
        },
        "step": {
            **DURATION,
            "description": "Resolution of query_range (default: 1/60 of the window, at least 1s).",
        },
        "timeout": {**DURATION, "description": "Deadline of each HTTP request (default 10s)."},
        "sigv4": {
            "type": "object",
            "description": "Sign requests with AWS SigV4 (Amazon Managed Service for "
            "Prometheus) with the SDK's credentials.",
            "properties": {
                "region": {"type": "string", "description": "Region (default: the fleet's)."},
                "service": {"type": "string", "description": "Service name (default aps)."},
            },
            "additionalProperties": False,
        },
    },
    required=["url"],
    metric={
        "query": {"type": "string", "minLength": 1, "description": "The PromQL query."},
        "samples_query": {
            "type": "string",
            "description": "PromQL giving the slot's sample count at the end of the window "
            "(e.g. its requests); default: the number of data points.",
        },
        "aggregate": {
            "enum": sorted(AGGREGATES),
            "description": "How the data points make the metric's value (default mean).",
        },
    },
    metric_required=["query"],
)


class Prometheus:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.url = str(config["url"]).rstrip("/")
        window = parse_duration(config["window"])
        self.step = parse_duration(config.get("step", max(1.0, math.ceil(window / 60))))
        self.timeout = parse_duration(config.get("timeout", "10s"))
        sigv4 = config.get("sigv4")
        self.sigv4: Mapping[str, Any] | None = sigv4 if isinstance(sigv4, Mapping) else None

    def samples(self, queries: Sequence[MetricQuery], ctx: PluginContext) -> list[MetricSamples]:
        return [self._one(q, ctx) for q in queries]

    def _fill(self, template: str, q: MetricQuery) -> str:
        text = q.slot.fill(template)
        window = f"{max(1, round(q.end - q.start))}s"
        return text.replace("{window}", window).replace("{step}", f"{self.step:g}s")

    def _one(self, q: MetricQuery, ctx: PluginContext) -> MetricSamples:
        query = self._fill(str(q.metric["query"]), q)
        params = {"query": query, "start": f"{q.start:.3f}", "end": f"{q.end:.3f}"}
        result = self._get(ctx, "query_range", {**params, "step": f"{self.step:g}"})
        points: list[float] = []
        dropped = 0
        for series in result:
            for _, raw in series.get("values", []):
                point = float(raw)
                if math.isfinite(point):
                    points.append(point)
                else:
                    dropped += 1
        notes = [f"{len(result)} series"] if len(result) > 1 else []
        if dropped:
            notes.append(f"{dropped} NaN/Inf points left out")
        aggregate = AGGREGATES[str(q.metric.get("aggregate", "mean"))]
        value = aggregate(points) if points else None
        count: float = len(points)
        if q.metric.get("samples_query"):
            counted = self._fill(str(q.metric["samples_query"]), q)
            answer = self._get(ctx, "query", {"query": counted, "time": f"{q.end:.3f}"})
            count = math.fsum(float(s["value"][1]) for s in answer if "value" in s)
            count = count if math.isfinite(count) else 0.0
        return MetricSamples(value, count, points, "; ".join(notes))

    def _get(self, ctx: PluginContext, api: str, params: Mapping[str, str]) -> list[Any]:
        url = f"{self.url}/api/v1/{api}?{urllib.parse.urlencode(params)}"
        error = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                ctx.clock.sleep(1.0)
            headers = {"Accept": "application/json"}
            if self.sigv4 is not None:
                headers = ctx.sign_request(
                    "GET",
                    url,
                    service=str(self.sigv4.get("service", "aps")),
                    region=self.sigv4.get("region"),
                    headers=headers,
                )
            try:
                answer = http_request(
                    "GET", url, deadline=self.timeout, headers=headers, max_body=MAX_BODY
                )
            except (OSError, ValueError) as exc:
                error = f"no answer: {exc or type(exc).__name__}"
                continue
            try:
                body = json.loads(answer.body)
            except ValueError:
                body = {}
            if answer.status == 200 and body.get("status") == "success":
                return list(body.get("data", {}).get("result", []))
            why = body.get("error") or answer.body[:200].decode(errors="replace")
            error = f"HTTP {answer.status}: {body.get('errorType', answer.reason)}: {why}"
            if 400 <= answer.status < 500 and answer.status != 429:
                break  # a bad query or a refusal: trying again changes nothing
        raise GateFailed(
            f"prometheus at {self.url}: {api} {params['query']!r} failed: {error}",
            checks=("analysis",),
        )


@hookimpl
def immutable_sdk_add_analysis_providers(registry: Registry[AnalysisProviderFactory]) -> None:
    registry.add(
        "prometheus",
        Prometheus,
        schema=SCHEMA,
        description="Compare the new slot with the previous one on PromQL queries (optionally "
        "SigV4-signed for Amazon Managed Service for Prometheus).",
    )
