"""Aborting real rollouts that Step Functions runs, while their units wait in the execution.

``orchestrator abort`` stops the execution (ABORTED) and rolls back every unit with a rollout
in progress; ``abort --fleet`` rolls one unit back, and the execution goes on with the others
and then fails, naming the aborted unit. ``promote`` ends a manual pause the execution waits
on. Workers run the SDK's own reconcile tick; every wait is a Step Functions Wait.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from immutable_sdk.clock import RealClock
from immutable_sdk.core.engine import Engine
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

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(Engine, "reconcile"), reason="needs the reconcile tick"),
]


@pytest.fixture
def health() -> Iterator[Health]:
    yield from serve_health()


HELD_AND_ROLLED_BACK = "the tick that held it ended its rollout: rolled_back"


def start(project: Project) -> str:
    applied = project.cli(
        "apply", "-f", str(project.spec), "--yes", "--on", "step-functions", "-o", "json"
    )
    assert applied.exit_code == 0, applied.output
    for _ in range(2):  # they exit once the execution sends nothing more
        project.worker("--concurrency", "2", "--idle-exit", "8s", tick=None)
    return str(json.loads(applied.stdout)["execution_arn"])


def waiting_in_bakes(project: Project, units: list[str], timeout: float = 60) -> dict[str, Any]:
    """``status --on step-functions``'s view of each of ``units`` the last time it was seen
    waiting until a time (a Wait), once each has been (not necessarily at once: under load a
    tick of one may run while the other waits)."""
    clock = RealClock()
    deadline = clock.monotonic() + timeout
    waited: dict[str, Any] = {}
    while clock.monotonic() < deadline:
        shown = project.cli(
            "status", "-f", str(project.spec), "--on", "step-functions", "-o", "json"
        )
        assert shown.exit_code == 0, shown.output
        seen = json.loads(shown.stdout)["execution"]["units"]
        for unit in units:
            if seen.get(unit, {}).get("state") == "progressing" and seen[unit]["next_at"]:
                waited[unit] = seen[unit]
        if len(waited) == len(units):
            return waited
        clock.sleep(0.5)
    raise AssertionError(f"{units} never waited in the execution: {project.logs()}")


def test_orchestrator_abort_rolls_back_the_units_waiting_in_their_bakes(
    project: Project, health: Health
) -> None:
    bakes = {"web": "20s", "api": "20s", "jobs": "0s"}
    rolled_out(project, health, bakes, TWO_WAVES)
    before = {f: fleet_view(project, f) for f in bakes}
    arn = start(project)
    seen = waiting_in_bakes(project, ["web", "api"])
    assert "bake" in seen["web"]["reason"] or seen["web"]["next_at"], seen
    # both rolled a batch out: each runs one instance of the new release beside the old
    during = {f: fleet_view(project, f) for f in ("web", "api")}
    assert all(len(set(v["instance_releases"])) == 2 for v in during.values()), during

    aborted = project.cli("orchestrator", "abort", "-f", str(project.spec), "-o", "json")
    assert aborted.exit_code == 0, aborted.output
    out = json.loads(aborted.stdout)
    assert (out["execution_arn"], out["status"]) == (arn, "ABORTED")
    # rolled back here, or (a tick of it ran at the abort) by that tick, signalled
    for unit in ("web", "api"):
        assert out["units"][unit] in ("aborted", HELD_AND_ROLLED_BACK), out
    assert out["units"]["jobs"].startswith("nothing to roll back"), out
    described = project.aws.describe_execution(arn)
    assert described is not None and described["status"] == "ABORTED"

    after = {f: fleet_view(project, f) for f in bakes}
    for fleet in ("web", "api"):  # back on the previous release, at capacity, nothing left
        assert after[fleet]["release"] == before[fleet]["release"]
        assert set(after[fleet]["instance_releases"]) == {before[fleet]["release"]}
        assert len(after[fleet]["instances"]) >= 2
        assert after[fleet]["versions"] == before[fleet]["versions"]
    assert after["jobs"] == before["jobs"]
    members = {i for view in after.values() for i in view["instances"]}
    assert running_instances(project) == members
    assert leftovers(project) == []
    # the workers went idle (no tick came after the stop) and exited on their own
    assert [w.wait(timeout=60) for w in project.workers] == [0, 0], project.logs()
    assert after == {f: fleet_view(project, f) for f in bakes}  # and nothing moved since


def test_abort_of_one_fleet_rolls_it_back_and_the_execution_fails_naming_it(
    project: Project, health: Health
) -> None:
    bakes = {"web": "2s", "api": "12s", "jobs": "0s"}
    rolled_out(project, health, bakes, TWO_WAVES)
    before = {f: fleet_view(project, f) for f in bakes}
    # api's tick may come while the abort holds its lock: it then waits one poll
    arn = start_planned(project, poll_seconds=2)
    for _ in range(2):
        project.worker("--concurrency", "2", tick=None)
    waiting_in_bakes(project, ["api"])
    aborted = project.cli("abort", "-f", str(project.spec), "--fleet", "api", "-o", "json")
    assert aborted.exit_code == 0, aborted.output  # rolled back here: no process held it
    assert json.loads(aborted.stdout)["outcome"] == "aborted", aborted.output

    done = project.wait_for(arn, timeout=90)
    assert done["status"] == "FAILED", (done, project.logs())
    cause = done["cause"]
    (failure,) = json.loads(cause[cause.index("[") :])
    assert failure.startswith("api: ") and "quarantined" in failure and "abort" in failure, cause
    after = {f: fleet_view(project, f) for f in bakes}
    assert after["api"]["release"] == before["api"]["release"]
    assert set(after["api"]["instance_releases"]) == {before["api"]["release"]}
    assert after["api"]["versions"] == before["api"]["versions"]
    # web beside it went on and converged; the next wave never started
    assert set(after["web"]["instance_releases"]) == {after["web"]["release"]}
    assert after["web"]["release"] != before["web"]["release"]
    assert after["jobs"] == before["jobs"]
    members = {i for view in after.values() for i in view["instances"]}
    assert running_instances(project) == members
    assert leftovers(project) == []
    assert project.stop_workers() == [0, 0], project.logs()


def test_promote_ends_a_manual_pause_the_execution_waits_on(project: Project) -> None:
    slots_rolled_out(
        project, "{type: canary, steps: [{weight: 50}, {pause: manual}, {weight: 100}]}"
    )
    blue = slot_instances(project)["blue"]
    arn = start_planned(project, poll_seconds=2)
    project.worker("--concurrency", "2", tick=None)
    clock = RealClock()
    deadline = clock.monotonic() + 60
    unit: dict[str, Any] = {}
    while clock.monotonic() < deadline:
        unit = unit_states(project.aws.history(arn)).get("checkout", {})
        if unit.get("state") == "waiting" and unit["ticks"] >= 3:  # asked again, still paused
            break
        clock.sleep(0.5)
    assert unit.get("state") == "waiting", (unit, project.logs())
    assert "operator" in unit["reason"], unit
    assert weights(project) == {"blue": 50, "green": 50}
    promoted = project.cli("promote", "-f", str(project.spec), "--fleet", "checkout")
    assert promoted.exit_code == 0, promoted.output

    done = project.wait_for(arn, timeout=60)
    assert done["status"] == "SUCCEEDED", (done, project.logs())
    assert weights(project) == {"blue": 0, "green": 100}
    slots = slot_instances(project)
    assert slots["blue"] == [] and len(slots["green"]) == 2
    assert running_instances(project) == set(slots["green"]) and not set(blue) & set(
        running_instances(project)
    )
    assert leftovers(project) == []
    assert project.stop_workers() == [0], project.logs()


class HeldEngine:
    """An engine whose unit a worker's tick holds for ``held`` looks, then lets go."""

    def __init__(self, held: int, outcome: str = "rolled_back") -> None:
        self.held = held
        self.outcome = outcome
        self.signals: list[str] = []

    def abort_unfinished(self, key: str) -> Any:
        if self.held > 0:
            self.held -= 1
            return None
        from immutable_sdk.errors import UsageError

        raise UsageError(f"fleet {key!r} has no rollout in progress")

    def abort(self, key: str) -> None:
        self.signals.append(key)

    def history(self, fleet: str, limit: int = 20) -> dict[str, Any]:
        return {fleet: {"rollouts": [{"id": "r-1", "outcome": self.outcome}]}}


def test_a_unit_held_by_a_tick_is_signalled_once_and_waited_for() -> None:
    from immutable_sdk.cli.orchestrator import _abort_unit

    engine = HeldEngine(held=2)
    assert _abort_unit(engine, "web", wait=30) == (
        "the tick that held it ended its rollout: rolled_back",
        True,
    )
    assert engine.signals == ["web"]
    # the tick finished the rollout before it read the signal: not rolled back, said so
    promoted = HeldEngine(held=1, outcome="promoted")
    assert _abort_unit(promoted, "web", wait=30)[1] is False
    # still held after --wait: left to abort --fleet, and the command fails
    what, ok = _abort_unit(HeldEngine(held=10**6), "web", wait=0)
    assert not ok and "abort --fleet web" in what
