"""A wave's stages on Step Functions: depends_on and max_regions_in_flight, as apply has them.

The Units Map runs a stage's units in parallel; stages run one after the other, so a unit
starts only after every unit of its wave that it depends on has ended, and at most
``max_regions_in_flight`` regions (one, without ``waves:``) have units running.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from immutable_sdk.core.orchestrator.definition import definition_json
from immutable_sdk.core.orchestrator.execution import execution_input, stages
from immutable_sdk.errors import UsageError
from immutable_sdk.results import Plan, PlanItem
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec
from immutable_sdk.testing.orchestrator import read_lines

from .conftest import Project, spec_text


def unit(key: str, region: str = "us-east-1") -> dict[str, str]:
    return {"key": key, "region": region}


def test_a_dependency_s_stage_comes_first_and_independent_units_share_one() -> None:
    units = [unit("web"), unit("db"), unit("api"), unit("jobs")]
    deps = {"web": ("api",), "api": ("db",), "jobs": ("gone-elsewhere",)}
    assert stages(units, deps, parallelism=10) == [
        {"units": [1, 3], "parallelism": 2},  # db, jobs (a dependency outside the wave: none)
        {"units": [2], "parallelism": 1},  # api
        {"units": [0], "parallelism": 1},  # web
    ]
    # parallelism caps a stage's units at once, never splits it
    assert stages(units, {}, parallelism=3) == [{"units": [0, 1, 2, 3], "parallelism": 3}]


def test_regions_in_flight_cut_each_level_into_stages_of_that_many_regions() -> None:
    units = [
        unit("db@eu-west-1", "eu-west-1"),
        unit("db"),
        unit("web@eu-west-1", "eu-west-1"),
        unit("web"),
        unit("db@ap-south-1", "ap-south-1"),
    ]
    deps = {"web@eu-west-1": ("db@eu-west-1",), "web": ("db",)}
    one = stages(units, deps, parallelism=10, max_regions_in_flight=1)
    assert [s["units"] for s in one] == [[0], [1], [4], [2], [3]]
    two = stages(units, deps, parallelism=10, max_regions_in_flight=2)
    assert [s["units"] for s in two] == [[0, 1], [4], [2, 3]]
    unlimited = stages(units, deps, parallelism=10)
    assert [s["units"] for s in unlimited] == [[0, 1, 4], [2, 3]]


def test_a_dependency_cycle_is_refused() -> None:
    with pytest.raises(UsageError, match="a -> b -> a"):
        stages([unit("a"), unit("b")], {"a": ("b",), "b": ("a",)}, parallelism=2)


def depends_spec(project: Project, waves: list[tuple[str, list[str], str]]) -> None:
    text = spec_text(["db", "api", "web"], waves)
    text = text.replace(
        "  api:\n    image: app\n", "  api:\n    image: app\n    depends_on: [db]\n"
    )
    project.write(text, {})


def test_the_execution_input_carries_the_stages_of_each_wave(project: Project) -> None:
    depends_spec(project, [])
    spec = load_spec([project.spec])
    items = tuple(
        PlanItem(fleet=f, action="create", release="r1", region="us-east-1")
        for f in ("api", "web", "db")
    )
    run = execution_input(spec, Plan("orc", items), parallelism=5)
    (wave,) = run.document["waves"]
    assert [u["key"] for u in wave["units"]] == ["api", "web", "db"]
    assert wave["stages"] == [
        {"units": [1, 2], "parallelism": 2},
        {"units": [0], "parallelism": 1},
    ]
    assert "parallelism" not in wave  # a stage's, not the wave's


@pytest.mark.slow
def test_a_unit_starts_after_the_unit_it_depends_on_in_its_wave_ended(project: Project) -> None:
    depends_spec(project, [])
    slow = [{"state": "progressing", "next_in": 2}, {"state": "converged"}]
    project.script.write_text(
        json.dumps({"db": slow, "web": slow, "api": [{"state": "converged"}]})
    )
    project.install("--heartbeat", "5s", "--tick-timeout", "60s")
    arn = project.start([["db", "api", "web"]])
    project.worker("--concurrency", "3")
    done = project.wait_for(arn)
    assert done["status"] == "SUCCEEDED", (done, project.logs())
    journal = [r["unit"] for r in read_lines(project.journal)]
    attempts = [r["unit"] for r in read_lines(project.journal.with_suffix(".attempts"))]
    # db and web (no dependencies) ran side by side; api's first tick came after db's last
    assert journal.index("web") < journal.index("db", journal.index("db") + 1)
    assert attempts.index("api") > len(attempts) - 1 - attempts[::-1].index("db")
    history = project.aws.history(arn)
    stages_started = [e for e in history if e["type"] == "MapIterationStarted"]
    assert len(stages_started) >= 1 + 2 + 3  # the wave, its two stages, three units
    assert project.stop_workers() == [0], project.logs()


def test_install_updates_an_older_definition_once(project: Project) -> None:
    project.write(spec_text(["web"], []), {})
    first = project.install()
    sfn = project.client("stepfunctions")
    arn = first["state_machine_arn"]
    older = {"StartAt": "Units", "States": {"Units": {"Type": "Succeed"}}}
    sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(older))
    updated = project.install()
    assert updated["changed"] == ["state machine immutable-sdk-orc"]
    machine = sfn.describe_state_machine(stateMachineArn=arn)
    assert machine["definition"] == definition_json(first["queue_url"])
    assert (
        "Stages" in json.loads(machine["definition"])["States"]["Waves"]["ItemProcessor"]["States"]
    )
    assert project.install()["changed"] == []


MULTI_REGION = """apiVersion: immutable-sdk/v1
name: orc
region: us-east-1
state: {backend: dynamodb, table: orc-state}
images:
  app:
    builder: ami
    ids: {us-east-1: ami-03c3da4cfa8e8943a, us-west-2: ami-03c3da4cfa8e8943a}
fleets:
  db:
    image: app
    regions: [us-east-1, us-west-2]
    instance_type: t3.micro
    subnets: [orc-a]
    security_groups: [orc-web]
    capacity: {min: 1, desired: 1, max: 2}
  web:
    image: app
    regions: [us-east-1, us-west-2]
    depends_on: [db]
    instance_type: t3.micro
    subnets: [orc-a]
    security_groups: [orc-web]
    capacity: {min: 1, desired: 1, max: 2}
"""


def test_a_multi_region_plan_goes_one_region_at_a_time_without_waves(project: Project) -> None:
    project.write(MULTI_REGION, {})
    spec = load_spec([project.spec])
    items = tuple(
        PlanItem(fleet=f, action="create", release="r1", region=r, key=spec.unit_key(f, r))
        for f in ("web", "db")
        for r in ("us-east-1", "us-west-2")
    )
    run = execution_input(spec, Plan("orc", items))
    (wave,) = run.document["waves"]
    keys = [u["key"] for u in wave["units"]]
    assert keys == ["web", "web@us-west-2", "db", "db@us-west-2"]
    named = [[keys[i] for i in s["units"]] for s in wave["stages"]]
    # db before web in each region (depends_on), one region at a time (the default wave)
    assert named == [["db"], ["db@us-west-2"], ["web"], ["web@us-west-2"]]
    # a wave with max_regions_in_flight: 2 runs both regions of a level at once
    project.write(
        MULTI_REGION + "waves:\n  - {name: all-regions, fleets: ['*'], max_regions_in_flight: 2}\n",
        {},
    )
    spec = load_spec([project.spec])
    waved = tuple(replace(i, wave="all-regions") for i in items)
    run = execution_input(spec, Plan("orc", waved, waves=({"name": "all-regions"},)))
    (wave,) = run.document["waves"]
    named = [[keys[i] for i in s["units"]] for s in wave["stages"]]
    assert named == [["db", "db@us-west-2"], ["web", "web@us-west-2"]]


def test_a_wave_that_would_go_on_after_a_failure_is_warned_about(project: Project) -> None:
    text = spec_text(["web", "api"], [("first", ["web"], "0s"), ("second", ["api"], "0s")])
    text = text.replace(
        "fleets: [web], bake: 0s}", "fleets: [web], bake: 0s, stop_on_failure: false}"
    )
    project.write(text, {})
    Sandbox.attach(project.url).seed(load_spec([project.spec]))
    project.install()
    applied = project.cli(
        "apply", "-f", str(project.spec), "--yes", "--on", "step-functions", "-o", "json"
    )
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["started"] is True
    assert "warning: wave first: stop_on_failure: false is not honoured" in applied.stderr
    arn = json.loads(applied.stdout)["execution_arn"]
    project.aws.stop_execution(arn, "test", "no workers here")
