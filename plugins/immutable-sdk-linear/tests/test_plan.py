"""The steps ``linear`` plans (pure: no AWS), and how it is found and validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from immutable_sdk_linear.strategy import Linear, increments

from immutable_sdk import SpecError, load_spec
from immutable_sdk.plugin import (
    Analyze,
    Bake,
    Gate,
    Provision,
    Retire,
    RolloutChange,
    ShiftTraffic,
)
from immutable_sdk.plugins import load_plugins
from immutable_sdk.testing import AMI_V1, sample_spec

REPO = Path(__file__).resolve().parents[3]


def change(fleet: Any = None, **kwargs: Any) -> RolloutChange:
    defaults: dict[str, Any] = {
        "fleet": fleet,
        "new_release": "r-new",
        "current_release": "r-old",
        "current_instances": 4,
        "desired": 4,
        "target_slot": "green",
        "source_slot": "blue",
    }
    return RolloutChange(**{**defaults, **kwargs})


def test_increments_end_at_exactly_100() -> None:
    assert increments(10) == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert increments(30) == [30, 60, 90, 100]
    assert increments(50) == [50, 100]
    assert increments(100) == [100]


def test_each_increment_shifts_then_bakes_and_the_previous_slot_retires_last() -> None:
    steps = Linear({"type": "linear", "percent": 25, "interval": "1m"}).plan(change())
    assert steps == [
        Provision("green", 4),
        Gate(slot="green"),
        ShiftTraffic({"green": 25, "blue": 75}),
        Bake(60),
        ShiftTraffic({"green": 50, "blue": 50}),
        Bake(60),
        ShiftTraffic({"green": 75, "blue": 25}),
        Bake(60),
        ShiftTraffic({"green": 100, "blue": 0}),
        Retire(4, slot="blue"),
    ]


def test_defaults_are_ten_percent_every_minute() -> None:
    steps = Linear({"type": "linear"}).plan(change())
    shifts = [s for s in steps if isinstance(s, ShiftTraffic)]
    assert [s.weights["green"] for s in shifts] == list(range(10, 101, 10))
    assert [s for s in steps if isinstance(s, Bake)] == [Bake(60)] * 9


def test_analysis_and_keep_previous() -> None:
    config = {
        "type": "linear",
        "percent": 50,
        "interval": "30s",
        "analysis": {"alarms": ["web-5xx"], "duration": "2m"},
        "keep_previous": "10m",
    }
    steps = Linear(config).plan(change(current_instances=3, desired=5))
    alarm = {"type": "cloudwatch-alarm", "alarms": ["web-5xx"], "duration": "2m"}
    assert steps == [
        Provision("green", 5),
        Gate(slot="green"),
        ShiftTraffic({"green": 50, "blue": 50}),
        Bake(30),
        Analyze(alarm),
        ShiftTraffic({"green": 100, "blue": 0}),
        Bake(600),
        Retire(3, slot="blue"),
    ]


def test_a_new_fleet_takes_all_traffic_at_once() -> None:
    steps = Linear({"type": "linear"}).plan(
        change(current_release=None, current_instances=0, source_slot=None)
    )
    assert steps == [Provision("green", 4), Gate(slot="green"), ShiftTraffic({"green": 100})]


def test_rolling_back_restores_the_previous_slot_first() -> None:
    steps = Linear({"type": "linear"}).plan(
        change(rollback=True, target_slot="blue", source_slot="green", current_instances=4)
    )
    assert steps == [ShiftTraffic({"blue": 100, "green": 0}), Retire(4, slot="green")]


def test_a_fleet_without_slots_is_told_what_it_needs(spec_writer: Any) -> None:
    spec = load_spec(
        [spec_writer(sample_spec(strategy="{type: linear}"))],
        plugins=load_plugins(),
        environ={"IMAGE_ID": AMI_V1},
    )
    with pytest.raises(SpecError, match=r"fleets.web.strategy: 'linear' .*fleets.web.traffic"):
        Linear({"type": "linear"}).plan(change(spec.fleets["web"], target_slot=None))


def test_the_entry_point_registers_the_strategy() -> None:
    entry = load_plugins().strategies.get("linear")  # autoload is on for these tests
    assert entry.distribution == "immutable-sdk-linear 0.1.0"
    assert entry.plugin == "linear"


def test_the_block_is_validated_with_locations(spec_writer: Any) -> None:
    path = spec_writer(
        sample_spec(traffic=True, strategy="{type: linear, percent: 0, interval: often, x: 1}")
    )
    with pytest.raises(SpecError) as info:
        load_spec([path], environ={"IMAGE_ID": AMI_V1})
    text = str(info.value)
    assert "fleets.web.strategy.percent: expected a number >= 1, got 0" in text
    assert "fleets.web.strategy.interval: expected a duration" in text
    assert "fleets.web.strategy.x: unknown key" in text


def test_the_repositorys_example_spec_uses_it() -> None:
    spec = load_spec([REPO / "specs" / "examples" / "linear.yaml"], environ={})
    strategies = {f.strategy.type for f in spec.fleets.values()}
    assert strategies == {"linear"}
