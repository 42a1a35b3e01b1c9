"""Fleets with traffic slots: what the schema and the semantic checks accept and refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from immutable_sdk.errors import SpecError
from immutable_sdk.plugins import load_plugins
from immutable_sdk.spec.load import load_spec

SPEC = """\
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web: {{builder: ami, id: ami-0123456789abcdef0}}
fleets:
  checkout:
    image: web
    instance_type: t3.micro
    capacity: {{min: 2, desired: 2, max: 4}}
{traffic}
    strategy:
{strategy}
{extra}
"""
TRAFFIC = """\
    traffic:
      route53: {zone: example.com., record: checkout.example.com, ttl: 30, alias: false}
      slots:
        blue: {target_group: checkout-blue}
        green: {target_group: checkout-green, load_balancer: checkout-green}"""
CANARY = """\
      type: canary
      canary_capacity: full
      steps:
        - {weight: 10, bake: 5m}
        - analysis:
            type: cloudwatch-metrics
            window: 5m
            interval: 1m
            min_samples: 100
            inconclusive: fail
            metrics:
              - {name: errors, preset: 5xx-rate, max: 0.01, max_ratio: 2}
              - name: cpu
                namespace: AWS/EC2
                metric: CPUUtilization
                statistic: p99
                dimensions: {AutoScalingGroupName: "{auto_scaling_group}"}
                max: 90
        - {analysis: {type: cloudwatch-alarm, alarms: [checkout-5xx], duration: 2m}}
        - {pause: manual}
        - {weight: 100, bake: 1m}
      keep_previous: 1h"""


def problems(
    tmp_path: Path, *, traffic: str = TRAFFIC, strategy: str = CANARY, extra: str = ""
) -> list[str]:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(traffic=traffic, strategy=strategy, extra=extra))
    try:
        load_spec([path], plugins=load_plugins(autoload=False), environ={})
    except SpecError as exc:
        return [f"{p.path}: {p.message}" for p in exc.problems]
    return []


def test_a_canary_with_analysis_and_a_blue_green_are_valid(tmp_path: Path) -> None:
    assert problems(tmp_path) == []
    bg = "\n".join(
        f"      {line}"
        for line in ("type: blue-green", "promote_after: manual", "bake: 5m", "keep_previous: 1h")
    )
    assert problems(tmp_path, strategy=bg) == []


def test_traffic_strategies_need_slots_and_slots_need_them(tmp_path: Path) -> None:
    found = problems(tmp_path, traffic="")
    assert any(
        p.startswith("fleets.checkout.strategy.type: strategy 'canary' moves traffic")
        for p in found
    )
    rolling = problems(tmp_path, strategy="      type: rolling")
    assert any("needs a strategy that moves traffic" in p for p in rolling)
    half = "    traffic:\n      slots: {blue: {target_group: b}, green: {target_group: g}}"
    assert "fleets.checkout.traffic: missing required key 'route53'" in problems(
        tmp_path, traffic=half
    )


@pytest.mark.parametrize(
    "strategy,expected",
    [
        (
            "      type: canary\n      steps:\n        - analysis: {type: cloudwatch-metrics, "
            "window: 5m, metrics: [{name: e, preset: 5xx-rate, max: 1}]}",
            "it needs a weight step between 0 and 100 before it",
        ),
        (
            "      type: canary\n      steps:\n        - {weight: 10}\n        - analysis: "
            "{type: cloudwatch-metrics, window: 5m, metrics: [{name: e, max: 1}]}",
            "either a 'preset' or a 'metric'",
        ),
        (
            "      type: canary\n      steps:\n        - {weight: 10}\n        - analysis: "
            "{type: cloudwatch-metrics, window: 5m, metrics: [{name: e, preset: 5xx-rate}]}",
            "a metric needs a threshold",
        ),
        (
            "      type: canary\n      steps:\n        - {weight: 10}\n        - analysis: "
            "{type: cloudwatch-metrics, metrics: [{name: e, preset: 5xx-rate, max: 1}]}",
            "missing required key 'window'",
        ),
        (
            "      type: canary\n      steps:\n        - {weight: 10}\n        - analysis: "
            "{type: cloudwatch-alarm, alarms: [a]}",
            "missing required key 'duration'",
        ),
        (
            "      type: canary\n      steps:\n        - {weight: 12.5}",
            "expected a whole number, got 12.5",
        ),
        (
            "      type: blue-green\n      promote_after: whenever",
            "expected 'manual' or a duration like '30s', '5m', '2h' or '1h30m', got 'whenever'",
        ),
        ("      type: canary\n      canary_capacity: half\n      steps: [{weight: 10}]", "'full'"),
    ],
)
def test_wrong_traffic_strategies_are_located_errors(
    tmp_path: Path, strategy: str, expected: str
) -> None:
    found = problems(tmp_path, strategy=strategy)
    assert any(expected in p for p in found), found


def test_slot_group_names_must_not_collide_with_fleets(tmp_path: Path) -> None:
    other = """\
  checkout-green:
    image: web
    instance_type: t3.micro
    capacity: {min: 1, max: 1}"""
    found = problems(tmp_path, extra=other)
    assert any(
        p.startswith("fleets.checkout-green: fleet name 'checkout-green' is taken") for p in found
    )
    lb = "    load_balancer: {target_groups: [x]}"
    found = problems(tmp_path, extra=lb)
    assert any("takes its target groups from traffic.slots" in p for p in found), found


def test_a_fleet_with_traffic_slots_has_a_counted_desired_capacity(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    text = SPEC.format(traffic=TRAFFIC, strategy=CANARY, extra="")
    path.write_text(text.replace("desired: 2", "desired: managed"))
    with pytest.raises(SpecError) as exc:
        load_spec([path], plugins=load_plugins(autoload=False), environ={})
    (problem,) = exc.value.problems
    assert str(problem.path) == "fleets.checkout.capacity.desired"
    assert "desired: managed is for fleets without traffic slots" in problem.message
