"""The keys every analysis block and every metric of it share, whatever the provider.

The core reads these keys (the judge is the same for every provider); a provider's schema adds
its own (a CloudWatch metric's ``namespace``, a Prometheus metric's ``query``). ``build_schema``
puts them into every registered provider's schema, and ``analysis_schema`` (public through
``immutable_sdk.plugin``) writes a provider's whole schema from its own keys.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

_DURATION: dict[str, Any] = {
    "type": ["string", "number"],
    "format": "duration",
    "x-expect": "a duration like '30s', '5m', '2h' or '1h30m'",
}

COMPARE: dict[str, Any] = {
    "type": "object",
    "description": "Compare the canary's data points with the baseline's with a Mann-Whitney U "
    "test: the metric fails when the canary is worse with p-value < alpha and an effect size "
    "(Vargha-Delaney A: the chance that a canary point is worse than a baseline point) of at "
    "least min_effect.",
    "properties": {
        "test": {"const": "mann-whitney", "description": "The test (mann-whitney)."},
        "alpha": {
            "type": "number",
            "exclusiveMinimum": 0,
            "exclusiveMaximum": 1,
            "description": "Significance level of the one-sided test (default 0.05).",
        },
        "direction": {
            "enum": ["increase", "decrease"],
            "description": "What is worse: a canary higher than the baseline (increase, "
            "default: errors, latency) or lower (decrease: throughput, success rate).",
        },
        "min_effect": {
            "type": "number",
            "minimum": 0.5,
            "maximum": 1,
            "description": "Smallest effect size that fails (default 0.64, a medium effect; "
            "0.5 means any significant difference).",
        },
        "min_points": {
            "type": "integer",
            "minimum": 2,
            "description": "Data points each slot needs for the test (default 5); fewer is "
            "inconclusive.",
        },
    },
    "additionalProperties": False,
}

METRIC_KEYS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "description": "A label for reports."},
    "max": {"type": "number", "description": "The canary's value must not exceed this."},
    "max_ratio": {
        "type": "number",
        "minimum": 0,
        "description": "The canary's value must not exceed the baseline's times this.",
    },
    "min_samples": {
        "type": "integer",
        "minimum": 0,
        "description": "Samples each judged slot needs in the window (default: the "
        "analysis's min_samples); fewer is inconclusive, never a pass.",
    },
    "compare": COMPARE,
    "dry_run": {
        "type": "boolean",
        "description": "Measure, judge and report this metric, but never fail or pause the "
        "rollout on it (default false): try a metric before trusting it.",
    },
}

ANALYSIS_KEYS: dict[str, Any] = {
    "window": {
        **_DURATION,
        "format": "positive-duration",  # a window of nothing judges nothing
        "description": "The period judged, ending when the step ends; the fleet's health "
        "checks keep watching the new slot meanwhile.",
    },
    "interval": {
        **_DURATION,
        "format": "positive-duration",  # 0 would judge in a busy loop
        "description": "Also judge every interval during the window, to fail early (default: "
        "only at the end).",
    },
    "min_samples": {
        "type": "integer",
        "minimum": 0,
        "description": "Default minimum samples per metric (default 1).",
    },
    "inconclusive": {
        "enum": ["pause", "fail"],
        "description": "What too few samples does: pause for `immutable-sdk promote`/`abort` "
        "(default) or fail (roll back). Never a pass.",
    },
}


def analysis_schema(
    name: str,
    *,
    description: str,
    metric: Mapping[str, Any],
    metric_required: Sequence[str] = (),
    properties: Mapping[str, Any] | None = None,
    required: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON Schema of an analysis provider's block.

    ``metric`` holds the provider's own keys of each entry of ``metrics`` (the shared ones:
    name, max, max_ratio, min_samples, compare, dry_run are added); ``properties`` the
    provider's own keys of the block (window, interval, min_samples, inconclusive are added).
    """
    item = {
        "type": "object",
        "description": "One metric judged on the new (canary) and the previous (baseline) slot.",
        "properties": {**copy.deepcopy(METRIC_KEYS), **copy.deepcopy(dict(metric))},
        "required": ["name", *metric_required],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "description": description,
        "properties": {
            "type": {"const": name, "description": "Selects this provider."},
            **copy.deepcopy(ANALYSIS_KEYS),
            **copy.deepcopy(dict(properties or {})),
            "metrics": {
                "type": "array",
                "items": item,
                "minItems": 1,
                "description": "The metrics judged.",
            },
        },
        "required": ["type", "window", "metrics", *required],
        "additionalProperties": False,
    }


def with_shared_keys(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A provider's schema with the shared keys it leaves out (its own definitions win).

    Only a provider whose block lists ``metrics`` shares them: one that derives its metrics
    (``cloudwatch-alarm`` from ``alarms``) says which keys it takes.
    """
    out = copy.deepcopy(dict(schema))
    props = out.setdefault("properties", {})
    if "metrics" not in props:
        return out
    for key, value in ANALYSIS_KEYS.items():
        props.setdefault(key, copy.deepcopy(value))
    metrics = props.get("metrics")
    items = metrics.get("items") if isinstance(metrics, dict) else None
    if isinstance(items, dict) and isinstance(items.get("properties"), dict):
        for key, value in METRIC_KEYS.items():
            items["properties"].setdefault(key, copy.deepcopy(value))
    return out
