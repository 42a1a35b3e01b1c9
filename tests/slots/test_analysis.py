"""Canary analysis on CloudWatch metrics: pass, fail, inconclusive, with the numbers judged."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import boto3
import pytest

from immutable_sdk import load_plugins
from immutable_sdk.analysis.cloudwatch import combine
from immutable_sdk.aws import metrics
from immutable_sdk.core.traffic.analysis import Analysis
from immutable_sdk.plugin import AnalysisSlot, RolloutInfo, Step, hookimpl

from .conftest import AMI_V1, AMI_V2, SlotWorld, slot_spec
from .test_operator import PacedClock, until

WINDOW = 300


def canary(inconclusive: str = "fail") -> str:
    return (
        "{type: canary, steps: [{weight: 20, bake: 1m}, {analysis: {type: cloudwatch-metrics, "
        f"window: 5m, min_samples: 100, inconclusive: {inconclusive}, metrics: "
        "[{name: errors, preset: 5xx-rate, max_ratio: 2}]}}, {weight: 100}]}"
    )


class Traffic:
    """When the analysis starts, the load balancer 'publishes' each slot's requests and 5xx
    over the next five minutes, one data point a minute (as an ALB does)."""

    def __init__(self, world: SlotWorld, requests: dict[str, int], errors: dict[str, int]):
        self.world, self.requests, self.errors = world, requests, errors

    @hookimpl
    def immutable_sdk_step_started(self, rollout: RolloutInfo, step: Step) -> None:
        if step.kind != "analysis":
            return
        cloudwatch = self.world.client("cloudwatch")
        start = self.world.clock.now()
        for slot in ("blue", "green"):
            data: list[dict[str, Any]] = []
            for minute in range(5):
                at = dt.datetime.fromtimestamp(start + 30 + 60 * minute, tz=dt.timezone.utc)
                for name, total in (
                    ("RequestCount", self.requests[slot]),
                    ("HTTPCode_Target_5XX_Count", self.errors[slot]),
                ):
                    data.append(
                        {
                            "MetricName": name,
                            "Dimensions": self.world.dimensions(slot),
                            "Timestamp": at,
                            "Value": total / 5,
                            "Unit": "Count",
                        }
                    )
            cloudwatch.put_metric_data(Namespace="AWS/ApplicationELB", MetricData=data)


def second_release(world: SlotWorld, spec: str, traffic: Traffic) -> Any:
    world.write(slot_spec(spec))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    world.extra_plugins.append(traffic)
    with world.engine(AMI_V2) as engine:
        result = engine.apply()
        journal = engine.state.journal(result.fleet("checkout").rollout)
    return result.fleet("checkout"), journal


def judged(journal: list[Any]) -> dict[str, Any]:
    """The numbers the analysis step judged on, from its journal entries."""
    entries = [e.data for e in journal if "verdict" in e.data]
    assert entries, journal
    return entries[-1]


def test_equal_metrics_pass_and_the_numbers_are_journaled(slots: SlotWorld) -> None:
    traffic = Traffic(slots, {"blue": 4000, "green": 1000}, {"blue": 40, "green": 10})
    checkout, journal = second_release(slots, canary(), traffic)
    assert checkout.outcome == "promoted", checkout
    result = judged(journal)
    assert result["verdict"] == "pass"
    assert result["window"]["end"] - result["window"]["start"] == WINDOW
    (errors,) = result["metrics"]
    assert errors["name"] == "errors" and errors["verdict"] == "pass"
    assert errors["canary"] == pytest.approx(0.01) and errors["baseline"] == pytest.approx(0.01)
    assert errors["samples"] == {"canary": 1000, "baseline": 4000}
    assert slots.weights() == {"blue": 0, "green": 100}


def test_five_times_the_baseline_5xx_rate_fails_and_rolls_back(slots: SlotWorld) -> None:
    traffic = Traffic(slots, {"blue": 4000, "green": 1000}, {"blue": 40, "green": 50})
    checkout, journal = second_release(slots, canary(), traffic)
    assert checkout.outcome == "rolled_back"
    assert "analysis failed: errors: canary 0.05 > 2 x baseline 0.01" in (checkout.error or "")
    result = judged(journal)
    assert result["verdict"] == "fail"
    assert result["metrics"][0]["canary"] == pytest.approx(0.05)
    assert slots.weights() == {"blue": 100, "green": 0} and slots.slot("green") == {}


def test_too_few_samples_is_inconclusive_never_a_pass(slots: SlotWorld) -> None:
    traffic = Traffic(slots, {"blue": 4000, "green": 50}, {"blue": 40, "green": 0})
    checkout, journal = second_release(slots, canary("fail"), traffic)
    assert checkout.outcome == "rolled_back"
    assert "analysis inconclusive: errors: canary has 50 of 100 samples needed" in (
        checkout.error or ""
    )
    assert judged(journal)["verdict"] == "inconclusive"


def test_an_inconclusive_analysis_pauses_until_an_operator_promotes(slots: SlotWorld) -> None:
    slots.write(slot_spec(canary("pause")))
    with slots.engine(AMI_V1) as engine:
        assert engine.apply().ok
    slots.extra_plugins.append(
        Traffic(slots, {"blue": 4000, "green": 50}, {"blue": 40, "green": 0})
    )
    slots.clock = PacedClock()
    engine = slots.engine(AMI_V2)
    out: dict[str, Any] = {}

    def run() -> None:
        with engine:
            out["result"] = engine.apply()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    until(lambda: any(e.kind == "analysis.inconclusive" for e in slots.events))
    assert thread.is_alive() and slots.weights() == {"blue": 80, "green": 20}
    with slots.engine(AMI_V2) as other:
        other.promote("checkout")
    thread.join(timeout=120)
    checkout = out["result"].fleet("checkout")
    assert checkout.outcome == "promoted", checkout
    step = next(e for e in slots.of_kind("step.finished") if "verdict" in e.data)
    assert (step.data["verdict"], step.data["ended_by"]) == ("inconclusive", "promote")


def test_any_metric_with_dimensions_and_averages_weighted_by_samples(aws: str) -> None:
    cloudwatch = boto3.client("cloudwatch", endpoint_url=aws, region_name="us-east-1")
    end = 1_800_000_000.0
    for group, points in (
        ("shop-web-green", [(1.0, 10), (3.0, 30)]),
        ("shop-web-blue", [(1.0, 40)]),
    ):
        cloudwatch.put_metric_data(
            Namespace="Shop",
            MetricData=[
                {
                    "MetricName": "Latency",
                    "Dimensions": [{"Name": "Group", "Value": group}],
                    "Timestamp": dt.datetime.fromtimestamp(end - 100 + i, tz=dt.timezone.utc),
                    "StatisticValues": {
                        "SampleCount": n,
                        "Sum": value * n,
                        "Minimum": value,
                        "Maximum": value,
                    },
                }
                for i, (value, n) in enumerate(points)
            ],
        )
    config = {
        "type": "cloudwatch-metrics",
        "window": "5m",
        "min_samples": 20,
        "metrics": [
            {
                "name": "latency",
                "namespace": "Shop",
                "metric": "Latency",
                "statistic": "Average",
                "dimensions": {"Group": "{auto_scaling_group}"},
                "max_ratio": 2,
            },
            {
                "name": "worst",
                "namespace": "Shop",
                "metric": "Latency",
                "statistic": "Maximum",
                "dimensions": {"Group": "{auto_scaling_group}"},
                "max": 2.5,
            },
        ],
    }
    ref = {
        s: AnalysisSlot(role, s, "web", None, "us-east-1", f"shop-web-{s}", "")
        for s, role in (("blue", "baseline"), ("green", "canary"))
    }
    analysis = Analysis(config, load_plugins(autoload=False).analysis_providers)
    judgement = analysis.judge(Context(cloudwatch), ref["green"], ref["blue"], end)
    latency, worst = (m.to_dict() for m in judgement.metrics)
    assert latency["canary"] == pytest.approx(2.5) and latency["baseline"] == pytest.approx(1.0)
    assert latency["samples"] == {"canary": 40, "baseline": 40}
    assert latency["verdict"] == "fail" and "canary 2.5 > 2 x baseline 1" in latency["reason"]
    assert worst["verdict"] == "fail" and worst["canary"] == 3.0
    assert worst["baseline"] is None  # max alone does not read the baseline
    assert judgement.verdict == "fail"


class Context:
    """The part of a plugin context the provider uses: a client."""

    def __init__(self, cloudwatch: Any) -> None:
        self.cloudwatch = cloudwatch

    def client(self, service: str, region: str | None = None) -> Any:
        assert service == "cloudwatch"
        return self.cloudwatch

    # what the engine's context does (core.context.Context)
    def metric_data(
        self, queries: Sequence[Mapping[str, Any]], start: float, end: float
    ) -> dict[str, list[tuple[float, float]]]:
        return metrics.metric_data(self.cloudwatch, queries, start, end)

    def alarm_states(self, names: Sequence[str]) -> dict[str, str]:
        return metrics.alarm_states(self.cloudwatch, names)


def test_combining_data_points() -> None:
    points = [(1.0, 2.0), (2.0, 4.0)]
    counts = [(1.0, 1.0), (2.0, 3.0)]
    assert combine("Sum", points, counts) == 6.0
    assert combine("Average", points, counts) == pytest.approx((2 + 12) / 4)
    assert combine("Minimum", points, counts) == 2.0
    assert combine("p99", points, counts) == 4.0  # the conservative choice
    assert combine("Average", [], []) is None


def test_mann_whitney_on_cloudwatch_per_minute_points_fails_a_worse_canary(
    slots: SlotWorld,
) -> None:
    compare = (
        "{type: canary, steps: [{weight: 20, bake: 1m}, {analysis: {type: cloudwatch-metrics, "
        "window: 5m, min_samples: 100, inconclusive: fail, metrics: [{name: errors, "
        "preset: 5xx-rate, compare: {test: mann-whitney, min_points: 5}}]}}, {weight: 100}]}"
    )
    traffic = Traffic(slots, {"blue": 4000, "green": 1000}, {"blue": 40, "green": 50})
    checkout, journal = second_release(slots, compare, traffic)
    assert checkout.outcome == "rolled_back"
    assert "errors: canary higher than baseline: Mann-Whitney p=" in (checkout.error or "")
    (errors,) = judged(journal)["metrics"]
    test = errors["test"]
    assert test["points"] == {"canary": 5, "baseline": 5}  # one a minute, from GetMetricData
    assert test["u"] == 25 and test["effect"] == 1.0 and test["p_value"] < 0.05
    assert errors["summary"]["canary"]["median"] == pytest.approx(0.05)
    assert errors["summary"]["baseline"]["median"] == pytest.approx(0.01)


def test_an_alarm_analysis_fails_on_a_firing_alarm_and_a_dry_run_one_does_not(
    slots: SlotWorld,
) -> None:
    def alarms(dry_run: bool) -> str:
        return (
            "{type: canary, steps: [{weight: 20}, {analysis: {type: cloudwatch-alarm, "
            f"alarms: [checkout-5xx], duration: 2m, dry_run: {str(dry_run).lower()}}}}}, "
            "{weight: 100}]}"
        )

    checks = "        - {type: ec2}"
    slots.write(slot_spec(alarms(False), checks=checks))
    with slots.engine(AMI_V1) as engine:
        assert engine.apply().ok
    slots.set_alarm("ALARM")
    with slots.engine(AMI_V2) as engine:
        failed = engine.apply().fleet("checkout")
    assert failed.outcome == "rolled_back"
    assert "analysis failed: checkout-5xx: alarm ALARM: canary 1 > max 0" in (failed.error or "")

    # A dry-run analysis changes the strategy, not the release: the failed release stays
    # quarantined, so trying it again is asked for (--retry-failed).
    slots.write(slot_spec(alarms(True), checks=checks), ami=AMI_V2)
    with slots.engine(AMI_V2) as engine:
        assert engine.plan().item("checkout").action == "blocked"
        result = engine.apply(retry_failed=True)
        journal = engine.state.journal(result.fleet("checkout").rollout)
    assert result.fleet("checkout").outcome == "promoted"
    (alarm,) = judged(journal)["metrics"]
    assert (alarm["verdict"], alarm["dry_run"]) == ("fail", True)
