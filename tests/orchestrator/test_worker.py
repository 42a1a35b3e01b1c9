"""A worker process: SIGTERM finishes the tick in hand, --idle-exit ends it, a tick that
raised is retried by the state machine."""

from __future__ import annotations

import signal

import pytest
from tests.cli.output_schema import check_output

from immutable_sdk.clock import RealClock
from immutable_sdk.testing.orchestrator import read_lines

from .conftest import Project, spec_text

pytestmark = pytest.mark.slow


def wait_for_attempt(project: Project, unit: str, step: int) -> dict[str, object]:
    clock = RealClock()
    deadline = clock.monotonic() + 30
    while clock.monotonic() < deadline:
        for record in read_lines(project.journal.with_suffix(".attempts")):
            if (record["unit"], record["step"]) == (unit, step):
                return record
        clock.sleep(0.05)
    raise AssertionError(f"no attempt of {unit} step {step}: {project.logs()}")


def test_sigterm_finishes_the_tick_in_hand_then_exits(project: Project) -> None:
    slow = [{"state": "progressing", "next_in": 1, "sleep": 3}, {"state": "converged"}]
    project.write(spec_text(["web"], []), {"web": slow})
    project.install("--heartbeat", "2s")
    arn = project.start([["web"]])
    first = project.worker()
    wait_for_attempt(project, "web", 0)
    first.send_signal(signal.SIGTERM)  # while its tick sleeps: the tick still ends and answers
    assert first.wait(timeout=30) == 0, project.logs()
    summary = check_output("worker", (project.tmp / "worker-0.out").read_text())["worker"]
    assert summary["ticks"] == {"answered": 1}
    assert [(r["unit"], r["step"]) for r in read_lines(project.journal)] == [("web", 0)]
    project.worker()  # the next tick goes to the next worker
    assert project.wait_for(arn)["status"] == "SUCCEEDED", project.logs()
    assert [(r["unit"], r["step"]) for r in read_lines(project.journal)] == [("web", 0), ("web", 1)]
    assert project.stop_workers() == [0, 0]


def test_a_tick_that_raised_is_asked_again(project: Project) -> None:
    steps = [{"state": "progressing", "next_in": 1, "raise": "AWS kept throttling"}]
    project.write(spec_text(["web"], []), {"web": [*steps, {"state": "converged"}]})
    project.install("--heartbeat", "5s")
    arn = project.start([["web"]])
    project.worker()
    assert project.wait_for(arn)["status"] == "SUCCEEDED", project.logs()
    kinds = [e["type"] for e in project.aws.history(arn)]
    assert kinds.count("TaskFailed") == 1  # ImmutableSdk.TickError, then the Retry
    assert "tick.failed unit=web error=ImmutableSdk.TickError" in project.logs()
    assert [(r["unit"], r["step"]) for r in read_lines(project.journal)] == [("web", 0), ("web", 1)]
    assert project.stop_workers() == [0]


def test_idle_exit_ends_a_worker_without_messages(project: Project) -> None:
    project.write(spec_text(["web"], []), {})
    project.install()
    clock = RealClock()
    started = clock.monotonic()
    proc = project.worker("--idle-exit", "2s", "--concurrency", "2")
    assert proc.wait(timeout=60) == 0, project.logs()
    assert clock.monotonic() - started < 30
    summary = check_output("worker", (project.tmp / "worker-0.out").read_text())["worker"]
    assert summary["ticks"] == {}
    assert "worker.stopping reason=idle for 2s" in project.logs()


def test_sigterm_ends_an_idle_worker_without_waiting_out_its_long_polls(project: Project) -> None:
    project.write(spec_text(["web"], []), {})
    project.install()
    proc = project.worker("--concurrency", "2")
    clock = RealClock()
    deadline = clock.monotonic() + 30
    while "worker.started" not in project.logs():
        assert clock.monotonic() < deadline and proc.poll() is None, project.logs()
        clock.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stopped = clock.monotonic()
    assert proc.wait(timeout=30) == 0, project.logs()
    # each thread's long poll lasts 20 s when no message comes: the worker did not wait for them
    assert clock.monotonic() - stopped < 10
    summary = check_output("worker", (project.tmp / "worker-0.out").read_text())["worker"]
    assert summary["ticks"] == {}
    assert summary["aws_calls"]["sqs.ReceiveMessage"] >= 1
