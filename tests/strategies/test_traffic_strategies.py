"""The blue-green and canary strategies' plans (pure: no AWS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from immutable_sdk.plugin import (
    Analyze,
    Bake,
    Gate,
    Pause,
    Provision,
    Retire,
    RolloutChange,
    ShiftTraffic,
    SpecError,
)
from immutable_sdk.spec.model import Capacity, FleetSpec, HealthSpec, PluginConfig
from immutable_sdk.strategies.bluegreen import BlueGreen
from immutable_sdk.strategies.canary import Canary


def change(
    *,
    desired: int = 4,
    target: str | None = "green",
    source: str | None = "blue",
    rollback: bool = False,
    current: int = 4,
) -> RolloutChange:
    fleet = FleetSpec(
        name="checkout",
        image="web",
        instance_type="t3.micro",
        capacity=Capacity(min=desired, desired=desired, max=desired * 2),
        strategy=PluginConfig("canary", base_dir=Path(".")),
        health=HealthSpec(),
    )
    return RolloutChange(
        fleet=fleet,
        new_release="r-new",
        current_release="r-old" if source else None,
        current_instances=current if source else 0,
        desired=desired,
        rollback=rollback,
        target_slot=target,
        source_slot=source,
    )


def test_blue_green_provisions_full_capacity_gates_shifts_once_and_keeps_previous() -> None:
    steps = BlueGreen({"type": "blue-green", "bake": "5m", "keep_previous": "1h"}).plan(change())
    assert steps == [
        Provision("green", 4),
        Gate(slot="green"),
        ShiftTraffic({"green": 100, "blue": 0}),
        Bake(300.0),
        Bake(3600.0),
        Retire(4, slot="blue"),
    ]


def test_blue_green_promote_after_pauses_before_the_shift() -> None:
    manual = BlueGreen({"type": "blue-green", "promote_after": "manual"}).plan(change())
    assert manual[2] == Pause(manual=True) and isinstance(manual[3], ShiftTraffic)
    timed = BlueGreen({"type": "blue-green", "promote_after": "10m"}).plan(change())
    assert timed[2] == Pause(600.0)
    # without keep_previous the old slot is retired right after the shift (the runner waits
    # out the record's TTL first)
    assert timed[-1] == Retire(4, slot="blue")
    assert not any(isinstance(s, Bake) for s in timed)


def test_first_release_has_no_previous_slot_to_keep_or_retire() -> None:
    first = change(source=None)
    for strategy in (
        BlueGreen({"type": "blue-green", "keep_previous": "1h", "promote_after": "manual"}),
        Canary({"type": "canary", "steps": [{"weight": 10, "bake": "5m"}], "keep_previous": "1h"}),
    ):
        assert strategy.plan(first) == [
            Provision("green", 4),
            Gate(slot="green"),
            ShiftTraffic({"green": 100}),
        ]


def canary(steps: list[dict[str, Any]], **extra: Any) -> Canary:
    return Canary({"type": "canary", "steps": steps, **extra})


def test_canary_capacity_follows_the_weights_and_ends_at_full_traffic() -> None:
    strategy = canary(
        [
            {"weight": 10, "bake": "5m"},
            {"weight": 50, "bake": "10m"},
            {"pause": "manual"},
            {"weight": 100},
        ],
        keep_previous="1h",
    )
    assert strategy.plan(change(desired=10)) == [
        Provision("green", 1),
        Gate(slot="green"),
        ShiftTraffic({"green": 10, "blue": 90}),
        Bake(300.0),
        Provision("green", 5),
        Gate(slot="green"),
        ShiftTraffic({"green": 50, "blue": 50}),
        Bake(600.0),
        Pause(manual=True),
        Provision("green", 10),
        Gate(slot="green"),
        ShiftTraffic({"green": 100, "blue": 0}),
        Bake(3600.0),
        Retire(4, slot="blue"),
    ]


def test_canary_full_capacity_provisions_once_and_appends_the_final_shift() -> None:
    steps = canary(
        [{"weight": 20}, {"analysis": {"type": "cloudwatch-metrics"}}, {"pause": "30s"}],
        canary_capacity="full",
    ).plan(change(desired=3))
    assert steps == [
        Provision("green", 3),
        Gate(slot="green"),
        ShiftTraffic({"green": 20, "blue": 80}),
        Analyze({"type": "cloudwatch-metrics"}),
        Pause(30.0),
        ShiftTraffic({"green": 100, "blue": 0}),
        Retire(4, slot="blue"),
    ]


@pytest.mark.parametrize("desired,weight,expected", [(4, 1, 1), (4, 25, 1), (4, 26, 2), (3, 99, 3)])
def test_proportional_capacity_is_at_least_one_and_rounds_up(
    desired: int, weight: int, expected: int
) -> None:
    assert canary([{"weight": weight}]).capacity(desired, weight) == expected


@pytest.mark.parametrize(
    "strategy",
    [BlueGreen({"type": "blue-green"}), canary([{"weight": 10}])],
    ids=["blue-green", "canary"],
)
def test_rollback_moves_traffic_back_first_then_retires_the_failed_slot(strategy: Any) -> None:
    back = change(target="blue", source="green", rollback=True, current=2)
    assert strategy.plan(back) == [
        ShiftTraffic({"blue": 100, "green": 0}),
        Retire(2, slot="green"),
    ]
    # nothing to go back to (a first release): only the failed slot goes
    first = change(target=None, source="green", rollback=True, current=2)
    assert strategy.plan(first) == [Retire(2, slot="green")]


def test_traffic_strategies_need_slots() -> None:
    with pytest.raises(SpecError, match="needs traffic slots"):
        BlueGreen({"type": "blue-green"}).plan(change(target=None, source=None))
