"""A rollout whose process died: the next apply of a traffic fleet takes it up step by step
(the same rollout, from its journal and the weights in Route 53) and finishes it."""

from __future__ import annotations

import contextlib
from typing import Any

from immutable_sdk.plugin import RolloutInfo, hookimpl

from .conftest import AMI_V2, SlotWorld
from .test_canary_rollout import Shifts, first_release


class Crash(Exception):
    """The process running the rollout dies (as far as the rollout can tell)."""


def test_the_next_apply_finishes_a_rollout_interrupted_while_keeping_the_previous_slot(
    slots: SlotWorld,
) -> None:
    first_release(slots, "{type: blue-green, keep_previous: 1h}")
    blue = slots.instances_of("blue")

    class DieInKeepPrevious:
        @hookimpl
        def immutable_sdk_step_started(self, rollout: RolloutInfo, step: Any) -> None:
            if step.kind == "bake":
                raise Crash("killed")

    slots.extra_plugins.append(DieInKeepPrevious())
    with slots.engine(AMI_V2) as engine:
        with contextlib.suppress(Crash):
            engine.apply()
        interrupted = engine.state.unfinished_rollout("checkout")
    assert interrupted is not None
    assert slots.weights() == {"blue": 0, "green": 100} and len(slots.instances_of("blue")) == 4

    slots.extra_plugins.clear()
    slots.events.clear()
    slots.clock.advance(3600)  # the dead process's lock lease runs out
    with slots.engine(AMI_V2) as engine:
        plan = engine.plan()
        assert plan.item("checkout").action == "replace", plan.to_dict()
        assert f"resume unfinished rollout {interrupted.id}" in plan.item("checkout").reasons
        result = engine.apply(plan)
        old = engine.state.get_rollout(interrupted.id)
        assert engine.state.unfinished_rollout("checkout") is None
    assert result.ok, result.fleet("checkout").error
    # the same rollout went on (its keep-previous wait had run out), never started over
    assert old is not None and old.outcome == "promoted"
    assert result.fleet("checkout").rollout == interrupted.id
    # no new instance, no traffic change: the warm slot is retired, the release stays
    assert result.fleet("checkout").launched == [] and not slots.of_kind("traffic.shifted")
    assert sorted(result.fleet("checkout").retired) == sorted(blue)
    assert slots.slot("blue") == {} and slots.weights() == {"blue": 0, "green": 100}


def test_the_next_apply_continues_a_canary_interrupted_with_traffic_split(
    slots: SlotWorld,
) -> None:
    strategy = "{type: canary, steps: [{weight: 50, bake: 10m}, {weight: 100}]}"
    first_release(slots, strategy)

    class DieInTheBake:
        @hookimpl
        def immutable_sdk_step_started(self, rollout: RolloutInfo, step: Any) -> None:
            if step.kind == "bake":
                raise Crash("killed")

    slots.extra_plugins.append(DieInTheBake())
    with slots.engine(AMI_V2) as engine, contextlib.suppress(Crash):
        engine.apply()
    assert slots.weights() == {"blue": 50, "green": 50}

    slots.extra_plugins.clear()
    shifts = Shifts(slots)
    slots.extra_plugins.append(shifts)
    slots.clock.advance(3600)
    with slots.engine(AMI_V2) as engine:
        result = engine.apply()
    assert result.ok, result.fleet("checkout").error
    # the canary goes on from its bake (its 10 minutes ran out meanwhile): the split is kept,
    # then the next step moves all traffic; nothing is reverted or started over
    assert [after for _, after, _ in shifts.seen] == [{"blue": 0, "green": 100}]
    assert slots.slot("blue") == {} and len(slots.instances_of("green")) == 4


def test_abort_rolls_back_a_canary_whose_process_died(slots: SlotWorld) -> None:
    strategy = "{type: canary, steps: [{weight: 50, bake: 10m}, {weight: 100}]}"
    first_release(slots, strategy)
    blue = slots.instances_of("blue")

    class DieInTheBake:
        @hookimpl
        def immutable_sdk_step_started(self, rollout: RolloutInfo, step: Any) -> None:
            if step.kind == "bake":
                raise Crash("killed")

    slots.extra_plugins.append(DieInTheBake())
    with slots.engine(AMI_V2) as engine, contextlib.suppress(Crash):
        engine.apply()
    slots.extra_plugins.clear()
    with slots.engine(AMI_V2) as engine:
        assert engine.abort_unfinished("checkout") is None  # its lease still runs: a signal
        slots.clock.advance(3600)
        result = engine.abort_unfinished("checkout")
        assert result is not None
        record = engine.state.get_rollout(str(result.rollout))
        assert engine.state.unfinished_rollout("checkout") is None
    assert (result.outcome, result.rolled_back_to) == ("rolled_back", result.from_release)
    assert record is not None and record.outcome == "rolled_back"
    assert slots.weights() == {"blue": 100, "green": 0}
    assert slots.slot("green") == {} and slots.instances_of("blue") == blue
