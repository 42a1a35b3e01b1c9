"""The rolling strategy's plans, checked by simulating them (no AWS needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from immutable_sdk.plugin import Bake, Gate, Launch, Pause, Retire, RolloutChange, SpecError
from immutable_sdk.spec.model import Capacity, FleetSpec, HealthSpec, PluginConfig
from immutable_sdk.strategies.rolling import Rolling


def change(current: int, desired: int, *, target: int = 0, rollback: bool = False) -> RolloutChange:
    fleet = FleetSpec(
        name="web",
        image="web",
        instance_type="t3.micro",
        capacity=Capacity(min=0, desired=desired, max=desired * 2),
        strategy=PluginConfig("rolling", base_dir=Path(".")),
        health=HealthSpec(),
    )
    return RolloutChange(
        fleet=fleet,
        new_release="r-new",
        current_release="r-old",
        current_instances=current,
        desired=desired,
        target_instances=target,
        rollback=rollback,
    )


def simulate(steps, old: int, new: int = 0) -> tuple[int, int, int, int]:
    """Run the steps on counts; returns (old, new, min healthy seen, max total seen)."""
    lowest, highest = old + new, old + new
    for step in steps:
        if isinstance(step, Launch):
            new += step.count  # launched instances count as healthy only after the gate
            highest = max(highest, old + new)
        elif isinstance(step, Retire):
            old -= step.count
            assert old >= 0
        lowest = min(lowest, old + new)
    return old, new, lowest, highest


def test_ten_instances_in_batches_of_three_never_drop_below_ten() -> None:
    steps = Rolling({"batch_size": 3, "min_healthy": "100%"}).plan(change(10, 10))
    assert [s.kind for s in steps] == ["launch", "gate", "retire"] * 4
    assert [s.count for s in steps if isinstance(s, Launch)] == [3, 3, 3, 1]
    old, new, lowest, highest = simulate(steps, 10)
    assert (old, new) == (0, 10)
    assert lowest >= 10
    assert highest == 13


def test_pause_between_batches_but_not_after_the_last() -> None:
    steps = Rolling({"batch_size": "50%", "pause": "30s"}).plan(change(4, 4))
    assert [s.kind for s in steps] == [
        "launch",
        "gate",
        "retire",
        "pause",
        "launch",
        "gate",
        "retire",
    ]
    assert steps[3] == Pause(30.0)


def test_bake_after_each_gate_before_retiring() -> None:
    steps = Rolling({"batch_size": 2, "bake": "5m"}).plan(change(4, 4))
    kinds = [s.kind for s in steps]
    assert kinds == ["launch", "gate", "bake", "retire"] * 2
    assert steps[2] == Bake(300.0)


def test_retire_first_when_no_surge_allowed() -> None:
    steps = Rolling({"batch_size": 2, "min_healthy": "50%", "max_surge": 0}).plan(change(4, 4))
    assert steps[0] == Retire(2)
    old, new, lowest, _ = simulate(steps, 4)
    assert (old, new) == (0, 4)
    assert lowest >= 2


def test_impossible_settings_are_refused() -> None:
    with pytest.raises(SpecError, match="no room"):
        Rolling({"min_healthy": "100%", "max_surge": 0}).plan(change(4, 4))


def test_create_launches_everything_then_gates() -> None:
    steps = Rolling({}).plan(change(0, 6))
    assert steps == [Launch(6), Gate()]


def test_resume_counts_instances_already_on_the_new_release() -> None:
    steps = Rolling({"batch_size": 3}).plan(change(4, 10, target=6))
    old, new, lowest, _ = simulate(steps, 4, 6)
    assert (old, new) == (0, 10)
    assert lowest >= 10


def test_rollback_restores_full_capacity_then_retires_the_failed_release() -> None:
    steps = Rolling({"batch_size": 3}).plan(change(6, 10, target=7, rollback=True))
    assert steps == [Launch(3), Gate(), Retire(6)]


@given(
    desired=st.integers(1, 60),
    batch=st.integers(1, 20),
    min_healthy=st.integers(0, 100),
    surge=st.integers(0, 10),
)
def test_any_valid_setting_converges_and_keeps_min_healthy(
    desired: int, batch: int, min_healthy: int, surge: int
) -> None:
    strategy = Rolling({"batch_size": batch, "min_healthy": f"{min_healthy}%", "max_surge": surge})
    try:
        steps = strategy.plan(change(desired, desired))
    except SpecError:
        assert surge == 0 and -(-desired * min_healthy // 100) >= desired
        return
    old, new, lowest, highest = simulate(steps, desired)
    assert (old, new) == (0, desired)
    assert lowest >= -(-desired * min_healthy // 100)
    assert highest <= desired + max(surge, 0)
