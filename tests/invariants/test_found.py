"""Sequences the safety machine found, shrunk, kept as named regression tests.

Each test is the machine's printed failing example, as is. Known defects of issue 13 are marked
``xfail(strict=True)``: when the fix lands the test passes, the strict mark fails the suite,
and whoever merged the fix removes the mark. Never weaken the monitor to make one pass.
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


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="issue 13 item 1: the rollback is gated on the alarm that failed the rollout",
)
def test_an_alarm_during_a_rolling_release_leaves_two_releases_serving(
    state: DeploymentSafety,
) -> None:
    state.fleet(kind="rolling")
    state.safe()
    state.alarm(state="ALARM", at_wait=6)
    state.release_rolling(strategy="rolling-batch2-pause30s", image="v2")
    state.safe()


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="issue 13 item 2: writes accepted from a process that lost its lock to a forced unlock",
)
def test_a_forced_unlock_lets_the_old_holder_write_the_journal(state: DeploymentSafety) -> None:
    state.fleet(kind="rolling")
    state.safe()
    state.takeover_during_next_apply(how="force-unlock", at_wait=3)
    state.release_rolling(strategy="rolling-batch2-min50", image="v2")
    state.safe()


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="found by the machine, not an issue 13 item: CreateLaunchTemplateVersion is sent "
    "without a ClientToken, so a retry after a lost answer makes a second version of the "
    "release, which the rollback leaves behind",
)
def test_a_lost_answer_to_a_new_template_version_leaves_an_orphan_version(
    state: DeploymentSafety,
) -> None:
    state.fleet(kind="rolling")
    state.safe()
    state.lose_response_next_apply(call=0)
    state.alarm(state="ALARM", at_wait=3)
    state.release_rolling(strategy="rolling-batch1", image="v2")
    state.safe()


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="issue 13 item 1: the rollback is gated on the alarm that failed the rollout "
    "(retire first: min_healthy 50%, no surge)",
)
def test_a_release_into_a_firing_alarm_leaves_two_releases_serving(
    state: DeploymentSafety,
) -> None:
    state.fleet(kind="rolling")
    state.safe()
    state.alarm(at_wait=None, state="ALARM")
    state.safe()
    state.release_rolling(image="v2", strategy="rolling-batch2-min50")
    state.safe()
