"""``orchestrator install``: idempotent, refuses local state, the same thing as a template."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from immutable_sdk.cli import main
from immutable_sdk.core.orchestrator.definition import TickSettings, definition
from immutable_sdk.core.orchestrator.resources import Orchestrator
from immutable_sdk.spec.load import load_spec

from .conftest import Project, spec_text


def test_install_twice_changes_nothing_the_second_time(project: Project) -> None:
    project.write(spec_text(["web", "api"], []), {})
    first = project.install()
    assert set(first["changed"]) == {
        "state table orc-state",
        "queue immutable-sdk-orc-ticks-dlq",
        "queue immutable-sdk-orc-ticks",
        "role immutable-sdk-orc-orchestrator",
        "state machine immutable-sdk-orc",
    }
    again = project.install()
    assert again["changed"] == []
    assert again["state_machine_arn"] == first["state_machine_arn"]
    # what it made: the queue sends what no worker could answer to the dead-letter queue
    sqs = project.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=first["queue_url"], AttributeNames=["All"])[
        "Attributes"
    ]
    dlq_arn = sqs.get_queue_attributes(
        QueueUrl=first["dead_letter_queue_url"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"] == dlq_arn
    machine = project.client("stepfunctions").describe_state_machine(
        stateMachineArn=first["state_machine_arn"]
    )
    assert json.loads(machine["definition"]) == definition(first["queue_url"], TickSettings())
    # a changed setting updates the state machine in place
    changed = project.install("--heartbeat", "90s")
    assert changed["changed"] == [
        "queue immutable-sdk-orc-ticks",
        "state machine immutable-sdk-orc",
    ]


def test_a_local_state_backend_is_refused_where_it_is_written(project: Project) -> None:
    project.write(
        spec_text(["web"], []).replace("backend: dynamodb, table: orc-state", "backend: local"), {}
    )
    result = project.cli("orchestrator", "install", "-f", str(project.spec), "--yes")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {project.spec}:4:")
    assert "needs the dynamodb state backend" in result.stderr
    # and without a state block at all: the spec's first line
    project.write(
        spec_text(["web"], []).replace("state: {backend: dynamodb, table: orc-state}\n", ""), {}
    )
    result = project.cli("worker", "-f", str(project.spec))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {project.spec}:1:1: state.backend:")


def test_the_cloudformation_template_holds_the_same_state_machine(
    tmp_path: Path, project: Project
) -> None:
    project.write(spec_text(["web"], []), {})
    orch = Orchestrator.for_spec(load_spec([project.spec]))
    runner = CliRunner()
    as_json = runner.invoke(
        main, ["orchestrator", "install", "-f", str(project.spec), "-o", "cloudformation"]
    )
    as_yaml = runner.invoke(
        main, ["orchestrator", "install", "-f", str(project.spec), "-o", "cloudformation-yaml"]
    )
    assert as_json.exit_code == 0 and as_yaml.exit_code == 0, as_json.output + as_yaml.output
    template = json.loads(as_json.stdout)
    assert yaml.safe_load(as_yaml.stdout) == template
    resources = template["Resources"]
    assert {r["Type"] for r in resources.values()} == {
        "AWS::SQS::Queue",
        "AWS::IAM::Role",
        "AWS::StepFunctions::StateMachine",
    }
    machine = resources["StateMachine"]["Properties"]
    states = machine["DefinitionString"]["Fn::Sub"]
    # the very definition install creates, the queue's URL being the queue's Ref
    assert json.loads(states.replace("${TickQueue}", "https://q")) == definition(
        "https://q", orch.settings
    )
    assert "${" not in states.replace("${TickQueue}", "")
    queue = resources["TickQueue"]["Properties"]
    assert queue["QueueName"] == "immutable-sdk-orc-ticks"
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["TickDeadLetterQueue", "Arn"]
    }
    assert queue["VisibilityTimeout"] > orch.settings.heartbeat_seconds
    # nothing was created: the template is printed instead
    assert project.client("sqs").list_queues().get("QueueUrls", []) == []
