"""The Step Functions orchestrator's AWS calls: its queues, roles, state machine, executions.

Every call is idempotent where the command is (``orchestrator install`` twice changes nothing
the second time; ``apply --on step-functions`` twice finds the execution it started).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from .session import AwsSession, error_code

STATES_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "states.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


NO_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


@dataclass(frozen=True)
class Queue:
    url: str
    arn: str


class Orchestration:
    """The calls of ``orchestrator install``, ``apply --on step-functions`` and ``status``."""

    def __init__(self, session: AwsSession) -> None:
        self.session = session
        self.sqs = session.client("sqs")
        self.sfn = session.client("stepfunctions")

    # --- install --------------------------------------------------------------------------

    def ensure_queue(self, name: str, attributes: Mapping[str, str]) -> tuple[Queue, bool]:
        """The queue ``name`` with ``attributes``: created, or its attributes set; True when
        something changed."""
        try:
            url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in (
                "AWS.SimpleQueueService.NonExistentQueue",
                "QueueDoesNotExist",
            ):
                raise
            url = self.sqs.create_queue(QueueName=name, Attributes=dict(attributes))["QueueUrl"]
            return Queue(url, self._arn(url)), True
        current = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        have = current.get("Attributes", {})
        wanted = {k: v for k, v in attributes.items() if not _same(have.get(k), v)}
        if wanted:
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes=wanted)
        return Queue(url, str(have.get("QueueArn") or self._arn(url))), bool(wanted)

    def _arn(self, url: str) -> str:
        got = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(got["Attributes"]["QueueArn"])

    def ensure_role(
        self, name: str, trust: Mapping[str, Any], policy: Mapping[str, Any]
    ) -> tuple[str, bool]:
        """The role ``name`` with ``trust`` and one inline policy ``policy``; its ARN and
        whether something changed."""
        iam = self.session.client("iam")
        changed = False
        try:
            role = iam.get_role(RoleName=name)["Role"]
            if _document(role.get("AssumeRolePolicyDocument")) != trust:
                iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
                changed = True
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise
            role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))[
                "Role"
            ]
            changed = True
        try:
            have = iam.get_role_policy(RoleName=name, PolicyName=name)["PolicyDocument"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise
            have = None
        if _document(have) != policy:
            iam.put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
            changed = True
        return str(role["Arn"]), changed

    def find_state_machine(self, name: str) -> str | None:
        """The ARN of the state machine ``name``, or None."""
        for page in self.sfn.get_paginator("list_state_machines").paginate():
            for machine in page.get("stateMachines", []):
                if machine["name"] == name:
                    return str(machine["stateMachineArn"])
        return None

    def ensure_state_machine(
        self, name: str, definition: str, role_arn: str, tags: Mapping[str, str]
    ) -> tuple[str, bool]:
        """The state machine ``name`` with ``definition`` and ``role_arn``; its ARN and
        whether it was created or updated."""
        arn = self.find_state_machine(name)
        if arn is None:
            made = self.sfn.create_state_machine(
                name=name,
                definition=definition,
                roleArn=role_arn,
                type="STANDARD",
                tags=[{"key": k, "value": v} for k, v in tags.items()],
            )
            return str(made["stateMachineArn"]), True
        have = self.sfn.describe_state_machine(stateMachineArn=arn)
        if json.loads(have["definition"]) == json.loads(definition) and have["roleArn"] == role_arn:
            return arn, False
        self.sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role_arn)
        return arn, True

    def describe_state_machine(self, arn: str) -> dict[str, Any]:
        return dict(self.sfn.describe_state_machine(stateMachineArn=arn))

    # --- executions -----------------------------------------------------------------------

    def start_execution(self, machine_arn: str, name: str, payload: str) -> tuple[str, bool]:
        """Start the execution ``name`` unless it exists; its ARN, and True when this call
        started it. Execution names are unique per state machine (for 90 days after one
        closed), so a second start of the same plan finds the first."""
        existing = self.execution_arn(machine_arn, name)
        if self.describe_execution(existing) is not None:
            return existing, False
        try:
            started = self.sfn.start_execution(
                stateMachineArn=machine_arn, name=name, input=payload
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "ExecutionAlreadyExists":
                raise
            return existing, False
        return str(started["executionArn"]), True

    @staticmethod
    def execution_arn(machine_arn: str, name: str) -> str:
        """``arn:aws:states:R:A:stateMachine:M`` -> ``arn:aws:states:R:A:execution:M:name``."""
        head, _, machine = machine_arn.rpartition(":stateMachine:")
        return f"{head}:execution:{machine}:{name}"

    def describe_execution(self, arn: str) -> dict[str, Any] | None:
        try:
            return dict(self.sfn.describe_execution(executionArn=arn))
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ("ExecutionDoesNotExist", "ResourceNotFound"):
                return None
            raise

    def executions(self, machine_arn: str, status: str | None = None) -> Iterator[dict[str, Any]]:
        """The state machine's executions, newest first."""
        kwargs: dict[str, Any] = {"stateMachineArn": machine_arn}
        if status:
            kwargs["statusFilter"] = status
        for page in self.sfn.get_paginator("list_executions").paginate(**kwargs):
            yield from page.get("executions", [])

    def history(self, arn: str) -> list[dict[str, Any]]:
        """Every event of the execution's history, oldest first."""
        events: list[dict[str, Any]] = []
        for page in self.sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
            events += page.get("events", [])
        return events

    def stop_execution(self, arn: str, error: str, cause: str) -> None:
        self.sfn.stop_execution(executionArn=arn, error=error, cause=cause)


def _same(have: str | None, want: str) -> bool:
    if have is None:
        return False
    if want.startswith("{"):
        try:
            # SQS may give numbers back as numbers ({"maxReceiveCount": 5} for "5")
            return bool(_strings(json.loads(have)) == _strings(json.loads(want)))
        except ValueError:
            return False
    return have == want


def _strings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strings(v) for k, v in value.items()}
    return str(value)


def _document(value: Any) -> Any:
    """A policy document as IAM returns it (a dict, or URL-encoded JSON text) as a dict."""
    if value is None or isinstance(value, dict):
        return value
    from urllib.parse import unquote

    text = str(value)
    return json.loads(unquote(text) if text.startswith("%7B") else text)
