"""``apply --on step-functions`` starts the plan's execution once; ``status`` follows it."""

from __future__ import annotations

import json

from tests.cli.output_schema import check_output

from immutable_sdk.clock import RealClock
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec
from immutable_sdk.testing.orchestrator import read_lines

from .conftest import Project, spec_text

FLEETS = ["web", "api", "jobs"]


def test_the_same_plan_starts_one_execution_that_status_follows(project: Project) -> None:
    script = {f: [{"state": "progressing", "next_in": 1}, {"state": "converged"}] for f in FLEETS}
    project.write(
        spec_text(FLEETS, [("front", ["web", "api"], "1s"), ("back", ["jobs"], "0s")]), script
    )
    Sandbox.attach(project.url).seed(load_spec([project.spec]))
    project.install("--heartbeat", "5s")

    apply = ["apply", "-f", str(project.spec), "--yes", "--on", "step-functions", "-o", "json"]
    first = project.cli(*apply)
    assert first.exit_code == 0, first.output
    started = check_output("apply --on step-functions", first.stdout)
    assert started["started"] is True
    assert started["units"] == ["web", "api", "jobs"]
    arn = started["execution_arn"]
    assert ":execution:immutable-sdk-orc:orc-" in arn
    again = json.loads(project.cli(*apply).stdout)
    assert (again["execution_arn"], again["started"]) == (arn, False)  # never started twice
    # the execution's input: the plan's waves in order, with their units
    described = project.aws.describe_execution(arn)
    assert described is not None
    waves = json.loads(described["input"])["waves"]
    assert [(w["name"], [u["key"] for u in w["units"]]) for w in waves] == [
        ("front", ["web", "api"]),
        ("back", ["jobs"]),
    ]

    project.worker("--concurrency", "3", "--idle-exit", "20s")
    done = project.wait_for(arn)
    assert done["status"] == "SUCCEEDED", project.logs()

    status = project.cli("status", "-f", str(project.spec), "--on", "step-functions", "-o", "json")
    assert status.exit_code == 0, status.output
    execution = check_output("status --on step-functions", status.stdout)["execution"]
    assert execution["execution_arn"] == arn and execution["status"] == "SUCCEEDED"
    assert {k: (u["state"], u["ticks"]) for k, u in execution["units"].items()} == {
        f: ("converged", 2) for f in FLEETS
    }
    text = project.cli("status", "-f", str(project.spec), "--on", "step-functions")
    assert f"execution {arn}: SUCCEEDED" in text.stdout
    assert "  jobs: converged" in text.stdout
    assert project.stop_workers() == [0]


def test_apply_on_step_functions_needs_the_orchestrator_installed(project: Project) -> None:
    project.write(spec_text(["web"], []), {})
    Sandbox.attach(project.url).seed(load_spec([project.spec]))
    result = project.cli("apply", "-f", str(project.spec), "--yes", "--on", "step-functions")
    assert result.exit_code == 2
    assert "run `immutable-sdk orchestrator install -f SPEC` first" in result.stderr


def test_orchestrator_abort_stops_the_execution_during_a_wait(project: Project) -> None:
    script = {
        f: [{"state": "progressing", "next_in": 3600}, {"state": "converged"}] for f in FLEETS
    }
    project.write(spec_text(FLEETS, []), script)
    Sandbox.attach(project.url).seed(load_spec([project.spec]))
    project.install("--heartbeat", "5s")
    applied = project.cli("apply", "-f", str(project.spec), "--yes", "--on", "step-functions")
    assert applied.exit_code == 0, applied.output
    project.worker("--concurrency", "3")
    clock = RealClock()
    deadline = clock.monotonic() + 30
    while len(read_lines(project.journal)) < len(FLEETS):  # every unit waits an hour now
        assert clock.monotonic() < deadline, project.logs()
        clock.sleep(0.1)
    result = project.cli("orchestrator", "abort", "-f", str(project.spec), "-o", "json")
    assert result.exit_code == 0, result.output
    aborted = check_output("orchestrator abort", result.stdout)
    assert aborted["status"] == "ABORTED"
    # the scripted tick starts no rollout: nothing to roll back (a reconcile tick's rollout
    # would be rolled back here, issue 16)
    assert set(aborted["units"]) == set(FLEETS)
    assert all(v.startswith("nothing to roll back") for v in aborted["units"].values())
    described = project.aws.describe_execution(aborted["execution_arn"])
    assert described is not None and described["status"] == "ABORTED", described.get("cause")
    again = project.cli("orchestrator", "abort", "-f", str(project.spec))
    assert again.exit_code == 2 and "no running execution" in again.stderr
    assert project.stop_workers() == [0]
