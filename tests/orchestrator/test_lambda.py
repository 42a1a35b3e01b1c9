"""``immutable_sdk.aws_lambda.handler`` ticks the records of an SQS event and answers them."""

from __future__ import annotations

import pytest

import immutable_sdk.aws_lambda as aws_lambda
from immutable_sdk.clock import RealClock
from immutable_sdk.core.orchestrator.lambda_ticks import LEASE_VAR, SPEC_VAR, TICK_VAR, lease_of
from immutable_sdk.errors import UsageError
from immutable_sdk.testing.orchestrator import JOURNAL_VAR, SCRIPT_VAR, read_lines

from .conftest import TICK, Project, spec_text


def test_the_handler_runs_an_execution_to_its_end(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    units = ["web", "api"]
    script = {u: [{"state": "progressing", "next_in": 1}, {"state": "converged"}] for u in units}
    script["api"] = [{"state": "waiting", "reason": "manual pause"}, {"state": "converged"}]
    project.write(spec_text(units, []), script)
    installed = project.install("--heartbeat", "5s")
    arn = project.start([units])
    for name, value in {
        SPEC_VAR: str(project.spec),
        TICK_VAR: TICK,
        SCRIPT_VAR: str(project.script),
        JOURNAL_VAR: str(project.journal),
        "AWS_ENDPOINT_URL": project.url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(aws_lambda, "_ticks", None)

    sqs = project.client("sqs")
    clock = RealClock()
    deadline = clock.monotonic() + 60
    invocations = 0
    while project.aws.describe_execution(arn)["status"] == "RUNNING":  # type: ignore[index]
        assert clock.monotonic() < deadline, "the execution did not end"
        got = sqs.receive_message(
            QueueUrl=installed["queue_url"],
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageSystemAttributeNames=["All"],
        )
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "eventSource": "aws:sqs",
            }
            for m in got.get("Messages", [])
        ]
        if not records:
            continue
        records.append({"messageId": "junk", "receiptHandle": "x", "body": "not a tick"})
        answer = aws_lambda.handler({"Records": records})
        invocations += 1
        assert answer == {"batchItemFailures": [{"itemIdentifier": "junk"}]}
        for m in got["Messages"]:  # what the event source mapping does after a good batch
            sqs.delete_message(QueueUrl=installed["queue_url"], ReceiptHandle=m["ReceiptHandle"])
    assert project.aws.describe_execution(arn)["status"] == "SUCCEEDED"  # type: ignore[index]
    assert sorted((r["unit"], r["step"]) for r in read_lines(project.journal)) == [
        ("api", 0),
        ("api", 1),
        ("web", 0),
        ("web", 1),
    ]
    assert invocations >= 2


def test_the_handler_s_lock_lease_comes_from_the_environment() -> None:
    assert lease_of({}) == 60.0  # as worker --lease
    assert lease_of({LEASE_VAR: "2m"}) == 120.0
    for bad in ("soon", "1s"):
        with pytest.raises(UsageError, match=LEASE_VAR):
            lease_of({LEASE_VAR: bad})
