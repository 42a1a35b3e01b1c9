"""The judge: thresholds, samples, dry-run metrics and the Mann-Whitney comparison, explained."""

from __future__ import annotations

from typing import Any

import pytest

from immutable_sdk.core.analysis.judge import MetricRule, judge, judge_metric
from immutable_sdk.plugin import MetricSamples


def rule(**block: Any) -> MetricRule:
    return MetricRule.parse({"name": "errors", **block}, default_samples=10)


def test_within_thresholds_passes_and_says_so() -> None:
    result = judge_metric(
        rule(max=0.05, max_ratio=2), MetricSamples(0.01, 100), MetricSamples(0.01, 400)
    )
    assert result.verdict == "pass"
    assert result.reason == (
        "canary 0.01 <= max 0.05; canary 0.01 <= 2 x baseline 0.01 "
        "(100 canary samples, 400 baseline)"
    )
    data = result.to_dict()
    assert data["thresholds"] == {"max": 0.05, "max_ratio": 2.0, "min_samples": 10}
    assert data["samples"] == {"canary": 100, "baseline": 400}
    assert data["summary"]["baseline"]["value"] == 0.01 and data["test"] is None


def test_each_broken_threshold_is_named() -> None:
    result = judge_metric(
        rule(max=0.02, max_ratio=2), MetricSamples(0.05, 100), MetricSamples(0.01, 400)
    )
    assert result.verdict == "fail"
    assert result.reason == (
        "canary 0.05 > max 0.02; canary 0.05 > 2 x baseline 0.01 (100 canary samples, 400 baseline)"
    )


def test_a_baseline_of_zero_fails_any_positive_canary_value() -> None:
    result = judge_metric(rule(max_ratio=3), MetricSamples(0.001, 100), MetricSamples(0.0, 100))
    assert result.verdict == "fail"


@pytest.mark.parametrize(
    ("canary", "baseline", "why"),
    [
        (MetricSamples(0.0, 5), MetricSamples(0.0, 100), "canary has 5 of 10 samples needed"),
        (MetricSamples(None, 50), MetricSamples(0.0, 100), "canary has no data in the window"),
        (MetricSamples(0.0, 50), MetricSamples(0.0, 3), "baseline has 3 of 10 samples needed"),
    ],
)
def test_too_few_samples_is_inconclusive(
    canary: MetricSamples, baseline: MetricSamples, why: str
) -> None:
    result = judge_metric(rule(max_ratio=2), canary, baseline)
    assert (result.verdict, result.reason) == ("inconclusive", why)


def test_max_alone_does_not_need_the_baseline() -> None:
    result = judge_metric(rule(max=1), MetricSamples(0.5, 20), None)
    assert result.verdict == "pass" and result.baseline is None


def test_a_dry_run_metric_is_judged_and_reported_but_never_decides() -> None:
    rules = [rule(max=0.05), MetricRule.parse({"name": "latency", "max": 0.2, "dry_run": True}, 10)]
    judgement = judge(
        "prometheus",
        rules,
        [(MetricSamples(0.01, 100), None), (MetricSamples(0.9, 100), None)],
        0.0,
        300.0,
    )
    assert judgement.verdict == "pass"
    latency = judgement.to_dict()["metrics"][1]
    assert latency["verdict"] == "fail" and latency["dry_run"] is True
    assert latency["reason"].startswith("would fail, ignored: canary 0.9 > max 0.2")
    assert judgement.summary.startswith("errors: canary 0.01 <= max 0.05")


def test_only_dry_run_metrics_fail_nothing() -> None:
    rules = [MetricRule.parse({"name": "new", "max": 1, "dry_run": True}, 10)]
    judgement = judge("x", rules, [(MetricSamples(5.0, 100), None)], 0.0, 60.0)
    assert judgement.verdict == "pass"
    assert (
        judgement.summary
        == "new (dry run): would fail, ignored: canary 5 > max 1 (100 canary samples)"
    )


SLOW = [0.30, 0.32, 0.35, 0.31, 0.36, 0.33, 0.34, 0.37]
FAST = [0.10, 0.12, 0.11, 0.13, 0.09, 0.14, 0.12, 0.105]


def test_mann_whitney_fails_a_canary_that_is_significantly_worse() -> None:
    result = judge_metric(
        rule(compare={"test": "mann-whitney"}),
        MetricSamples(0.33, 80, SLOW),
        MetricSamples(0.12, 80, FAST),
    )
    assert result.verdict == "fail", result.reason
    assert result.test is not None
    assert result.test["u"] == 64 and result.test["effect"] == 1.0
    assert result.test["p_value"] < 0.001 and result.test["method"] == "normal"  # ties (0.12)
    assert "canary higher than baseline: Mann-Whitney p=" in result.reason
    assert "effect A=1.00 >= 0.64 (medians 0.335 vs 0.115)" in result.reason


def test_mann_whitney_passes_when_the_slots_look_alike() -> None:
    mixed = [0.11, 0.13, 0.10, 0.12, 0.14, 0.09, 0.115, 0.125]
    result = judge_metric(
        rule(compare={"test": "mann-whitney"}),
        MetricSamples(0.12, 80, mixed),
        MetricSamples(0.12, 80, FAST),
    )
    assert result.verdict == "pass", result.reason
    assert result.reason.startswith("canary not significantly higher than baseline: p=")


def test_mann_whitney_direction_decrease_fails_a_lower_canary() -> None:
    result = judge_metric(
        rule(compare={"test": "mann-whitney", "direction": "decrease"}),
        MetricSamples(0.12, 80, FAST),
        MetricSamples(0.33, 80, SLOW),
    )
    assert result.verdict == "fail" and "canary lower than baseline" in result.reason


def test_mann_whitney_with_too_few_points_is_inconclusive() -> None:
    result = judge_metric(
        rule(compare={"test": "mann-whitney", "min_points": 5}),
        MetricSamples(0.3, 80, SLOW[:3]),
        MetricSamples(0.1, 80, FAST),
    )
    assert result.verdict == "inconclusive"
    assert result.reason == "Mann-Whitney needs 5 data points per slot, got 3 canary and 8 baseline"
