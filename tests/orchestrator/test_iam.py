"""``iam-policy --role orchestrator|worker``: the state machine's role and a worker's."""

from __future__ import annotations

import json

from click.testing import CliRunner

from immutable_sdk.cli import main

from .conftest import spec_text


def policy(tmp_path, role: str) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(["web"], []))
    result = CliRunner().invoke(
        main,
        ["iam-policy", "-f", str(spec), "--role", role, "--account", "123456789012", "-o", "json"],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    return [s for p in out["policies"] for s in p["document"]["Statement"]]


def test_the_state_machine_may_only_send_to_its_queue(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert policy(tmp_path, "orchestrator") == [
        {
            "Sid": "TickQueueSend",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": "arn:aws:sqs:us-east-1:123456789012:immutable-sdk-orc-ticks",
        }
    ]


def test_a_worker_has_apply_s_policy_and_its_queue_and_answers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    apply = {s["Sid"] for s in policy(tmp_path, "apply")}
    worker = {s["Sid"]: s for s in policy(tmp_path, "worker")}
    assert apply < set(worker)
    assert set(worker) - apply == {"TickQueueWork", "TickAnswers", "Executions", "FindStateMachine"}
    assert worker["TickQueueWork"]["Resource"] == (
        "arn:aws:sqs:us-east-1:123456789012:immutable-sdk-orc-ticks"
    )
    assert "sqs:SendMessage" not in worker["TickQueueWork"]["Action"]  # type: ignore[operator]
    assert worker["Executions"]["Resource"] == [
        "arn:aws:states:us-east-1:123456789012:execution:immutable-sdk-orc:*",
        "arn:aws:states:us-east-1:123456789012:stateMachine:immutable-sdk-orc",
    ]
