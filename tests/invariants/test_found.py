"""Sequences the safety machine found, shrunk, kept as named regression tests.

Each test is the machine's printed failing example, as is. A defect found and not yet fixed is
marked ``xfail(strict=True)``: when the fix lands the test passes, the strict mark fails the
suite, and whoever merged the fix removes the mark. Never weaken the monitor to make one pass.
Fixed so far: issue 13 items 1 and 2 (the first, second and fourth test), and the launch
template version made twice by a retried create (the third: a client token, and all versions
of a failed release deleted).
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
