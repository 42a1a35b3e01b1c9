"""Executions of the generated state machine on the emulator, driven by worker processes.

Each worker runs the scripted tick (``immutable_sdk.testing.orchestrator``): per unit a list of
answers, each step journaled once it is done. Step Functions holds the waits (``next_at``, the
wave's bake) and gives a dead worker's tick to another worker.
"""

from __future__ import annotations

import json
import signal
from collections import Counter

import pytest
from tests.cli.output_schema import check_output

from immutable_sdk.clock import RealClock
from immutable_sdk.testing.orchestrator import read_lines

from .conftest import Project, spec_text

pytestmark = pytest.mark.slow

WAVE_1 = ["a1", "a2", "a3", "a4", "a5"]
WAVE_2 = ["b1", "b2", "b3", "b4", "b5"]
STEPS = [{"state": "progressing", "next_in": 1}, {"state": "converged"}]


def two_waves(project: Project, script: dict[str, list[dict[str, object]]]) -> None:
    project.write(
        spec_text(WAVE_1 + WAVE_2, [("first", WAVE_1, "2s"), ("second", WAVE_2, "0s")]),
        script,
    )


def steps_done(project: Project) -> Counter[tuple[str, int]]:
    return Counter((r["unit"], r["step"]) for r in read_lines(project.journal))


def test_two_waves_succeed_with_a_worker_killed_mid_tick(project: Project) -> None:
    script = {unit: STEPS for unit in WAVE_1 + WAVE_2}
    # a2's second step hangs on its first attempt: its worker is killed there
    script["a2"] = [STEPS[0], {"state": "converged", "sleep": 120}]
    two_waves(project, script)
    project.install("--heartbeat", "3s", "--tick-timeout", "60s")
    arn = project.start([WAVE_1, WAVE_2])
    for _ in range(3):
        project.worker("--concurrency", "2")

    clock = RealClock()
    deadline = clock.monotonic() + 60
    hanging = None
    while hanging is None and clock.monotonic() < deadline:
        tried = read_lines(project.journal.with_suffix(".attempts"))
        hanging = next((r for r in tried if r["unit"] == "a2" and r["step"] == 1), None)
        clock.sleep(0.1)
    assert hanging is not None, project.logs()
    victim = next(p for p in project.workers if p.pid == hanging["pid"])
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL

    done = project.wait_for(arn)
    assert done["status"] == "SUCCEEDED", (done.get("error"), done.get("cause"), project.logs())
    # every scripted step ran exactly once, the killed one included (by another worker)
    assert steps_done(project) == Counter(
        {(u, s): 1 for u in WAVE_1 + WAVE_2 for s in range(len(STEPS))}
    )
    redone = [r for r in read_lines(project.journal) if (r["unit"], r["step"]) == ("a2", 1)]
    assert redone[0]["pid"] != hanging["pid"]
    # waves in order, the bake between them: no unit of the second wave ticked before the
    # first wave's last step
    journal = read_lines(project.journal)
    last_first = max(i for i, r in enumerate(journal) if r["unit"] in WAVE_1)
    first_second = min(i for i, r in enumerate(journal) if r["unit"] in WAVE_2)
    assert last_first < first_second
    history = project.aws.history(arn)
    kinds = Counter(e["type"] for e in history)
    assert kinds["TaskTimedOut"] >= 1  # the dead worker's heartbeat timeout, then the Retry
    assert kinds["WaitStateEntered"] >= len(WAVE_1 + WAVE_2)  # each unit's next_at wait
    # every tick answered once (the killed one by another worker), as the history counts them
    assert kinds["TaskSucceeded"] == 2 * len(WAVE_1 + WAVE_2)

    codes = project.stop_workers()
    assert [c for c in codes if c != -signal.SIGKILL] == [0, 0], project.logs()
    # none failed; the workers' logs hold every answer but one the victim sent and was
    # killed before it logged
    answered = project.logs(whole=True).count("tick.answered ")
    assert 2 * len(WAVE_1 + WAVE_2) - 1 <= answered <= 2 * len(WAVE_1 + WAVE_2)
    outcomes: Counter[str] = Counter()
    for n, proc in enumerate(project.workers):
        if proc is not victim:
            out = (project.tmp / f"worker-{n}.out").read_text()
            summary = check_output("worker", out)["worker"]
            outcomes.update(summary["ticks"])
    assert outcomes["failed"] == 0 and outcomes["invalid"] == 0


def test_a_failed_unit_fails_the_execution_with_its_reason(project: Project) -> None:
    script = {unit: STEPS for unit in WAVE_1 + WAVE_2}
    reason = "gate failed: b3 unhealthy on 2 of 2 instances; rolled back to r0"
    script["b3"] = [STEPS[0], {"state": "failed", "reason": reason}]
    two_waves(project, script)
    project.install("--heartbeat", "5s", "--tick-timeout", "60s")
    arn = project.start([WAVE_1, WAVE_2])
    project.worker("--concurrency", "3")
    project.worker("--concurrency", "3")

    done = project.wait_for(arn)
    assert done["status"] == "FAILED", (done, project.logs())
    assert done["error"] == "ImmutableSdk.UnitFailed"
    # the cause names the failed unit and its reason (test_failures.py: the whole cause)
    assert done["cause"].endswith(json.dumps([f"b3: {reason}"])), done["cause"]
    # the first wave converged before the second started; b3's siblings were not stopped
    assert {(r["unit"], r["step"]) for r in read_lines(project.journal)} == {
        (u, s) for u in WAVE_1 + WAVE_2 for s in range(2)
    }
    assert project.stop_workers() == [0, 0], project.logs()
