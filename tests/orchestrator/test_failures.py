"""A unit that fails on Step Functions, with workers running the SDK's own reconcile tick.

Two fleets roll out side by side in the first wave, a third waits in the second. The first
wave's ``api`` fails its gate (an ``http`` check against a server the test controls answers
500): it rolls back to its previous release, and only then its branch ends; ``web`` beside it
is not stopped, it converges; ``jobs`` is never touched; the execution fails naming ``api``
and the gate's reason, and nothing is left behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from immutable_sdk.clock import RealClock, VirtualClock
from immutable_sdk.core.engine import Engine
from immutable_sdk.core.orchestrator.reconcile_tick import ReconcileTick, answer_of
from immutable_sdk.core.orchestrator.watch import unit_states

from .conftest import Project
from .fleets import (
    TWO_WAVES,
    Health,
    fleet_view,
    leftovers,
    rolled_out,
    running_instances,
    serve_health,
    slot_instances,
    slots_rolled_out,
    start_planned,
    weights,
)
from .test_tick import request


def test_a_rollback_that_waits_is_not_the_end_of_the_unit() -> None:
    """A tick whose rollback waits (a canary's DNS TTL) answers progressing; the tick that
    finished the rollback answers failed, with the failure that started it."""
    ttl = {"state": "failed", "outcome": "rolling_back", "waiting_for": "ttl", "next_at": 1e9}
    waiting = answer_of({"units": {"web": {**ttl, "error": "bake: alarm checkout-5xx"}}}, "web")
    assert waiting.state == "progressing" and waiting.next_at == "2001-09-09T01:46:40Z"
    assert waiting.reason == "rolling back, waiting for ttl: bake: alarm checkout-5xx"
    unlimited = {**ttl, "next_at": None}
    assert answer_of({"units": {"web": unlimited}}, "web").state == "waiting"
    ticks = iter(
        [
            {"units": {"web": ttl}},
            {"units": {"web": {"state": "failed", "outcome": "rolled_back", "rollout": "r-2"}}},
        ]
    )

    class Engine:
        def reconcile(self, **_kwargs: Any) -> Any:
            return next(ticks)

        def history(self, fleet: str | None = None, limit: int = 20) -> dict[str, Any]:
            rollouts = [
                {"id": "r-2", "outcome": "rolled_back", "error": "bake: alarm checkout-5xx"},
                {"id": "r-1", "outcome": "promoted", "error": None},
            ]
            return {"web": {"releases": [], "rollouts": rollouts}}

    @contextmanager
    def opened() -> Iterator[Engine]:
        yield Engine()

    tick = ReconcileTick(opened)
    assert tick.tick(request()).state == "progressing"
    done = tick.tick(request())
    assert (done.state, done.reason) == ("failed", "rolled_back: bake: alarm checkout-5xx")


@pytest.fixture
def health() -> Iterator[Health]:
    yield from serve_health()


def test_a_rollback_aws_stopped_is_tried_again_then_the_unit_fails() -> None:
    unfinished = {
        "state": "failed",
        "outcome": "rollback_unfinished",
        "rollout": "r-2",
        "error": "gate failed; the rollback to release r1 did not finish: Throttling",
    }
    attempts = {"n": 1}

    class Engine:
        def reconcile(self, **_kwargs: Any) -> Any:
            return {"units": {"web": unfinished}}

        def history(self, fleet: str | None = None, limit: int = 20) -> dict[str, Any]:
            record = {"id": "r-2", "phase": "rolling_back", "outcome": None, "error": "gate"}
            record["data"] = {"rollback_attempts": attempts["n"]}
            return {"web": {"releases": [], "rollouts": [record]}}

    @contextmanager
    def opened() -> Iterator[Engine]:
        yield Engine()

    tick = ReconcileTick(opened, clock=VirtualClock(start=1_800_000_000.0))
    first = tick.tick(request())
    assert (first.state, first.next_at) == ("progressing", "2027-01-15T08:00:30Z")
    assert first.reason.startswith("rolling back: attempt 1 of 5 did not finish, trying again")
    attempts["n"] = 4
    assert tick.tick(request()).next_at == "2027-01-15T08:02:00Z"  # waits longer each time
    attempts["n"] = 5
    last = tick.tick(request())
    assert (last.state, last.reason) == ("failed", unfinished["error"])


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(Engine, "reconcile"), reason="needs the reconcile tick")
def test_a_failing_unit_rolls_back_its_sibling_finishes_and_later_waves_wait(
    project: Project, health: Health
) -> None:
    bakes = {"web": "4s", "api": "0s", "jobs": "0s"}
    rolled_out(project, health, bakes, TWO_WAVES)
    before = {f: fleet_view(project, f) for f in bakes}
    health.codes["api"] = 500  # api's new instances fail their gate (and so would its old)

    applied = project.cli(
        "apply", "-f", str(project.spec), "--yes", "--on", "step-functions", "-o", "json"
    )
    assert applied.exit_code == 0, applied.output
    arn = json.loads(applied.stdout)["execution_arn"]
    for _ in range(2):  # they exit once the execution sends nothing more
        project.worker("--concurrency", "2", "--idle-exit", "10s", tick=None)
    done = project.wait_for(arn, timeout=120)
    assert done["status"] == "FAILED", (done, project.logs())
    assert done["error"] == "ImmutableSdk.UnitFailed"
    cause = done["cause"]
    assert cause.startswith("1 of 2 unit(s) of wave first failed"), cause
    (failure,) = json.loads(cause[cause.index("[") :])
    assert failure.startswith("api: ") and "http" in failure, failure
    after = {f: fleet_view(project, f) for f in bakes}
    # api: back on its previous release, at its capacity, its failed version deleted
    assert after["api"]["release"] == before["api"]["release"]
    assert set(after["api"]["instance_releases"]) == {before["api"]["release"]}
    assert len(after["api"]["instances"]) >= 2
    assert after["api"]["versions"] == before["api"]["versions"]
    # web: converged beside it, on the new release
    assert after["web"]["release"] != before["web"]["release"]
    assert set(after["web"]["instance_releases"]) == {after["web"]["release"]}
    assert len(after["web"]["instances"]) == 2
    # jobs: never touched
    assert after["jobs"] == before["jobs"]
    # nothing orphaned: every running instance is a member of a group
    members = {i for view in after.values() for i in view["instances"]}
    assert running_instances(project) == members
    assert leftovers(project) == []
    # api's branch ended after its rollback: its last answer was the failure, web's converged
    units = unit_states(project.aws.history(arn))
    assert units["api"]["state"] == "failed" and units["web"]["state"] == "converged"
    assert "jobs" not in units
    # the workers went idle and exited on their own
    assert [w.wait(timeout=60) for w in project.workers] == [0, 0], project.logs()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(Engine, "reconcile"), reason="needs the reconcile tick")
def test_a_canary_s_rollback_over_several_ticks_ends_its_branch_only_when_done(
    project: Project,
) -> None:
    slots_rolled_out(project, "{type: canary, steps: [{weight: 50, bake: 8s}, {weight: 100}]}")
    blue = slot_instances(project)["blue"]
    arn = start_planned(project, poll_seconds=2)
    project.worker("--concurrency", "2", tick=None)
    clock = RealClock()
    deadline = clock.monotonic() + 60
    while weights(project) != {"blue": 50, "green": 50} and clock.monotonic() < deadline:
        clock.sleep(0.3)
    assert weights(project) == {"blue": 50, "green": 50}, project.logs()
    project.client("cloudwatch").set_alarm_state(
        AlarmName="checkout-5xx", StateValue="ALARM", StateReason="5xx above threshold"
    )
    done = project.wait_for(arn, timeout=60)
    assert done["status"] == "FAILED", (done, project.logs())
    (failure,) = json.loads(done["cause"][done["cause"].index("[") :])
    assert failure.startswith("checkout: ") and "checkout-5xx" in failure, failure
    # the answers: the failed bake moved the traffic back and waited for the record's TTL
    # (progressing, rolling back); the tick after it retired the green slot and said failed
    answers = [
        json.loads(e["taskSucceededEventDetails"]["output"])
        for e in project.aws.history(arn)
        if e["type"] == "TaskSucceeded"
    ]
    back = [a for a in answers if a["reason"].startswith("rolling back")]
    assert back and all(a["state"] == "progressing" for a in back), answers
    assert answers.index(back[0]) < len(answers) - 1 and answers[-1]["state"] == "failed"
    assert weights(project) == {"blue": 100, "green": 0}
    assert slot_instances(project) == {"blue": blue, "green": []}
    assert running_instances(project) == set(blue)
    assert leftovers(project) == []
    assert project.stop_workers() == [0], project.logs()
