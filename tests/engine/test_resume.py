"""A rollout killed at any point converges when apply runs again (in process, virtual clock).

A ``Crash`` (a BaseException, as a killed process: nothing catches it, nothing is rolled back,
the lock is kept) stops the rollout from release 1 to release 2 of a fleet of 4 in batches of
2, at every step boundary and at every mutating AWS call (before it is sent and after AWS
answered). A second engine, once the lease expired, resumes the rollout (or aborts it) and the
fleet must end exactly as if nothing had happened: 4 instances of the target release, nothing
left outside the group, one launch template version per release, the spec's capacity, no
suspended process, no unfinished rollout, and never fewer than 4 healthy instances.
"""

from __future__ import annotations

import pytest

from immutable_sdk.aws.fence import mutating
from immutable_sdk.state.base import RolloutRecord
from immutable_sdk.state.sqlite import SqliteStateStore

from .conftest import AMI_V1, AMI_V2, World, fleet_spec
from .durable import (
    Crash,
    CrashAtBoundary,
    assert_converged,
    assert_state_settled,
    crash_at_call,
    min_healthy,
)

DESIRED = 4
LEASE = 60.0
STEPS = 6  # launch, gate, retire, launch, gate, retire
MUTATING_CALLS = 13  # every mutating AWS call of the rollout from release 1 to release 2

pytestmark = pytest.mark.slow


def deployed(world: World) -> str:
    """Release 1 on the fleet; returns its id."""
    world.write(fleet_spec(desired=DESIRED))
    with world.engine(AMI_V1) as engine:
        result = engine.apply()
    assert result.ok, result.to_dict()
    world.events.clear()
    return result.fleet("web").to_release or ""


def crashed_rollout(
    world: World,
    boundary: CrashAtBoundary | None = None,
    *,
    call: tuple[int, bool] | None = None,
    ami: str = AMI_V2,
) -> RolloutRecord:
    """Roll out ``ami`` and crash where asked; returns the unfinished rollout's record."""
    if boundary is not None:
        world.extra_plugins.append(boundary)
    engine = world.engine(ami)
    if call is not None:
        crash_at_call(engine, call[0], after=call[1])
    with pytest.raises(Crash):
        engine.apply()
    engine.close()
    world.extra_plugins.clear()
    with SqliteStateStore(world.tmp / "state.db", "shop") as state:
        record = state.unfinished_rollout("web")
        lock = state.get_lock("web")
    assert record is not None
    assert lock is not None, "a killed rollout keeps its lock until the lease expires"
    world.clock.advance(LEASE + 1)
    return record


def outcomes(world: World) -> list[str | None]:
    """The outcomes of the fleet's rollouts, sorted (rollouts may start at one virtual time)."""
    with SqliteStateStore(world.tmp / "state.db", "shop") as state:
        return sorted(str(r.outcome) for r in state.rollouts("web"))


def resume_and_check(world: World, v1: str, record: RolloutRecord) -> None:
    with world.engine(AMI_V2) as engine:
        plan = engine.plan()
        item = plan.item("web")
        assert item.action == "replace"
        assert f"resume unfinished rollout {record.id}" in item.reasons
        result = engine.apply(plan)
    web = result.fleet("web")
    assert result.ok, result.to_dict()
    assert (web.outcome, web.rollout) == ("promoted", record.id)
    v2 = web.to_release or ""
    assert_converged(world, v2, AMI_V2, desired=DESIRED, releases=[v1, v2])
    assert_state_settled(world)
    assert min_healthy(world) >= DESIRED
    assert outcomes(world) == ["promoted", "promoted"]  # resumed, not rolled out twice


# Right after a step finished is, but for one journal entry, right before the next started:
# every start, and the end of the last step.
BOUNDARIES = [("started", i) for i in range(STEPS)] + [("finished", STEPS - 1)]


@pytest.mark.parametrize(("when", "index"), BOUNDARIES)
def test_a_crash_at_a_step_boundary_resumes_to_the_same_end(
    world: World, when: str, index: int
) -> None:
    v1 = deployed(world)
    record = crashed_rollout(world, CrashAtBoundary(when, index))
    resume_and_check(world, v1, record)


# After AWS answered call n is where a killed process leaves the most undone (AWS changed,
# the journal does not know); before call n differs from after call n-1 only where a journal
# note comes between: before the version is created (0) and before the first launch (3).
# The first batch's detach (5) keeps the desired capacity and so launches the second batch;
# the second batch (7-9) has no launch call of its own and its detach lowers the capacity:
# every call is a crash point of its own.
CALLS = [(n, True) for n in range(MUTATING_CALLS)]
CALLS += [(0, False), (3, False)]


@pytest.mark.parametrize(("n", "after"), CALLS)
def test_a_crash_at_a_mutating_call_resumes_to_the_same_end(
    world: World, n: int, after: bool
) -> None:
    v1 = deployed(world)
    record = crashed_rollout(world, call=(n, after))
    resume_and_check(world, v1, record)


def test_the_crash_points_cover_every_mutating_call(world: World) -> None:
    """The rollout makes exactly these mutating calls: the parametrization misses none."""
    deployed(world)
    sent: list[str] = []

    def record(event_name: str = "", **_: object) -> None:
        if mutating(event_name):
            sent.append(event_name.split(".", 2)[2])

    with world.engine(AMI_V2) as engine:
        engine.session.events.register("before-send.*.*", record)
        assert engine.apply().ok
    batch = ["DeregisterTargets", "DetachInstances", "TerminateInstances"]
    assert sent == [
        "CreateLaunchTemplateVersion",
        "SuspendProcesses",
        "UpdateAutoScalingGroup",
        "UpdateAutoScalingGroup",  # the first launch
        *batch,  # its detach launches the second batch
        *batch,
        "UpdateAutoScalingGroup",
        "CreateOrUpdateTags",
        "ResumeProcesses",
    ]
    assert len(sent) == MUTATING_CALLS
