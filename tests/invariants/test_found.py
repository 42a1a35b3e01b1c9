"""Sequences the safety machine found, shrunk, kept as named regression tests.

Each test is the machine's printed failing example, as is. A defect found and not yet fixed is
marked ``xfail(strict=True)``: when the fix lands the test passes, the strict mark fails the
suite, and whoever merged the fix removes the mark. Never weaken the monitor to make one pass.
Fixed so far: issue 13 items 1 and 2 (the first, second and fourth test), the launch
template version made twice by a retried create (the third: a client token, and all versions
of a failed release deleted), and a slot left at min 0 by a rollout that died before sizing
its home slot, then rolled back to (the sixth: a slot rollback sizes the slot that serves).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .rules import Bench, DeploymentSafety

pytestmark = pytest.mark.slow


@pytest.fixture
def state(bench: Bench) -> Iterator[DeploymentSafety]:
    class Machine(DeploymentSafety):
        pass

    Machine.bench = bench
    machine = Machine()
    try:
        yield machine
    finally:
        machine.teardown()


def test_an_alarm_during_a_rolling_release_leaves_two_releases_serving(
    state: DeploymentSafety,
) -> None:
    state.fleet(kind="rolling")
    state.safe()
    state.alarm(state="ALARM", at_wait=6)
    state.release_rolling(strategy="rolling-batch2-pause30s", image="v2")
    state.safe()


def test_a_forced_unlock_lets_the_old_holder_write_the_journal(state: DeploymentSafety) -> None:
    state.fleet(kind="rolling")
    state.safe()
    state.takeover_during_next_apply(how="force-unlock", at_wait=3)
    state.release_rolling(strategy="rolling-batch2-min50", image="v2")
    state.safe()


def test_a_lost_answer_to_a_new_template_version_leaves_an_orphan_version(
    state: DeploymentSafety,
) -> None:
    state.fleet(kind="rolling")
    state.safe()
    state.lose_response_next_apply(call=0)
    state.alarm(state="ALARM", at_wait=3)
    state.release_rolling(strategy="rolling-batch1", image="v2")
    state.safe()


def test_a_release_into_a_firing_alarm_leaves_two_releases_serving(
    state: DeploymentSafety,
) -> None:
    state.fleet(kind="rolling")
    state.safe()
    state.alarm(at_wait=None, state="ALARM")
    state.safe()
    state.release_rolling(image="v2", strategy="rolling-batch2-min50")
    state.safe()


def test_a_rollback_and_a_release_in_one_second_keep_their_order(
    state: DeploymentSafety,
) -> None:
    """Found by the soak (seed 2028, round seed 2031): an operator's rollback and the next
    release started at one clock reading; the store listed them by their random ids, so the
    rollback looked like the newest rollout while the release ran (invariant 4). Fixed: a
    rollout starts after the fleet's newest one."""
    state.fleet(kind="rolling")
    state.safe()
    state.burst_next_apply(kind="throttle", length=3, start=17)
    state.safe()
    state.release_rolling(image="v2", strategy="rolling-batch2-min50")
    state.safe()
    state.operator_during_next_apply(action="promote-full", at_wait=12)
    state.safe()
    state.operator_rollback()
    state.safe()
    state.operator_during_next_apply(action="promote-full", at_wait=10)
    state.safe()
    state.burst_next_apply(kind="5xx", length=1, start=17)
    state.safe()
    state.release_rolling(image="v1", strategy="rolling-batch1")
    state.safe()


def test_a_crashed_canary_rolled_back_into_a_firing_alarm_restores_the_slot_s_bounds(
    state: DeploymentSafety,
) -> None:
    """Found by the soak (seed 3000): a canary release crashes just before an
    UpdateAutoScalingGroup, the alarm goes to ALARM, and the apply that resumes the rollout
    rolls it back, recorded ``rolled_back``, with slot group ``inv-web-blue`` left at
    min/desired/max (0, 4, 8) instead of the spec's bounds (invariant 4). The rollout had
    died between its last step and sizing its home slot; the next release failed and rolled
    back to that slot. Fixed: a slot rollback gives the slot that serves again the spec's
    bounds."""
    state.fleet(kind="slots")
    state.safe()
    state.release_slots(image="v1", strategy="blue-green-manual")
    state.safe()
    state.crash_next_apply(after=True, call=16)
    state.safe()
    state.operator_during_next_apply(action="promote", at_wait=1)
    state.safe()
    state.crash_next_apply(after=False, call=7)
    state.safe()
    state.operator_during_next_apply(action="promote", at_wait=7)
    state.safe()
    state.release_slots(image="v2", strategy="canary")
    state.safe()
    state.release_slots(image="v1", strategy="canary")
    state.safe()
    state.alarm(at_wait=None, state="ALARM")
    state.safe()
    state.operator_during_next_apply(action="promote", at_wait=10)
    state.safe()
    state.teardown()  # the final apply resumes the rollout: the violation is there
