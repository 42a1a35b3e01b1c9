"""A worker's AWS calls: take tick messages from the queue, answer their tasks' tokens.

A task token that no task waits for any more (it timed out and Step Functions retried it with
a new one, or the execution ended) answers with ``TaskGone``: the worker drops the message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from ..errors import ImmutableSdkError
from .session import AwsSession, error_code
from .stepfunctions import NO_QUEUE

GONE_CODES = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})


class TaskGone(ImmutableSdkError):
    """The task of a token timed out, or its execution ended: nobody waits for this answer."""


@dataclass(frozen=True)
class Message:
    body: str
    receipt: str
    receives: int  # how often SQS delivered it (ApproximateReceiveCount)


class WorkQueue:
    """The work queue at ``url`` and the task answers, for one worker process."""

    def __init__(self, session: AwsSession, url: str) -> None:
        self.url = url
        self.session = session
        self.sqs = session.client("sqs")
        self.sfn = session.client("stepfunctions")

    @staticmethod
    def find(session: AwsSession, name: str) -> str | None:
        """The URL of the queue ``name``, or None when it does not exist."""
        try:
            return str(session.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in NO_QUEUE:
                return None
            raise

    def receive(self, wait_seconds: int, most: int = 1) -> list[Message]:
        """Long-poll for at most ``most`` messages (up to ``wait_seconds``, at most 20)."""
        got = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(10, most)),
            WaitTimeSeconds=max(0, min(20, wait_seconds)),
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [
            Message(
                m["Body"],
                m["ReceiptHandle"],
                int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            )
            for m in got.get("Messages", [])
        ]

    def delete(self, message: Message) -> None:
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt)

    def hide(self, message: Message, seconds: int) -> None:
        """Keep ``message`` hidden ``seconds`` more (0: give it back to the queue now)."""
        self.sqs.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=message.receipt, VisibilityTimeout=seconds
        )

    def heartbeat(self, token: str) -> None:
        with _gone():
            self.sfn.send_task_heartbeat(taskToken=token)

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        with _gone():
            self.sfn.send_task_success(taskToken=token, output=json.dumps(output))

    def fail(self, token: str, error: str, cause: str) -> None:
        with _gone():
            self.sfn.send_task_failure(taskToken=token, error=error[:256], cause=cause[:32768])


@contextmanager
def _gone() -> Iterator[None]:
    """Turns the answers that mean "nobody waits for this token" into TaskGone."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in GONE_CODES:
            raise TaskGone(f"{error_code(exc)}: nobody waits for this tick's answer") from exc
        raise


class EventSourceQueue(WorkQueue):
    """The work queue as a Lambda function sees it: SQS's event source mapping receives the
    messages and deletes those of a successful batch; only the task answers are the SDK's."""

    def __init__(self, session: AwsSession) -> None:
        super().__init__(session, url="")

    def receive(self, wait_seconds: int, most: int = 1) -> list[Message]:
        raise NotImplementedError("a Lambda function is handed its messages")

    def delete(self, message: Message) -> None:
        return None

    def hide(self, message: Message, seconds: int) -> None:
        return None
