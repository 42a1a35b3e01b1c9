"""The one generic state machine, as Amazon States Language, generated from code.

Not one per strategy or per spec: the execution's input (``execution.execution_input``) carries
the waves and their units, so a single state machine per project runs any plan::

    Waves (Map over $.waves, one at a time)
      Units (Map over the wave's units, MaxConcurrencyPath = the wave's parallelism)
        Tick (SQS sendMessage.waitForTaskToken; Retry on States.Timeout / HeartbeatTimeout)
        Decide (Choice on $.tick.state)
          converged -> Converged (Succeed)
          failed    -> Failed (Fail, the tick's reason as the cause: the execution FAILS)
          a next_at -> WaitUntil (Wait, TimestampPath $.tick.next_at) -> Tick
          otherwise -> WaitPoll (Wait, SecondsPath $.poll_seconds) -> Tick
      Bake (Wait, SecondsPath $.wave.bake_seconds)

A worker that dies mid-tick stops heartbeating: the task times out after ``heartbeat_seconds``
and the Retry sends a new message with a new token, which another worker takes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

UNIT_FAILED = "ImmutableSdk.UnitFailed"
UNKNOWN_ANSWER = "ImmutableSdk.UnknownTickAnswer"
TICK_ERROR = "ImmutableSdk.TickError"  # a worker's SendTaskFailure when the tick raised
ABORTED = "ImmutableSdk.Aborted"  # StopExecution's error by ``orchestrator abort``


@dataclass(frozen=True)
class TickSettings:
    """How long a Tick task may run, and how often a worker must show it is alive."""

    heartbeat_seconds: int = 60  # a worker heartbeats at least three times as often
    timeout_seconds: int = 3600  # a whole tick (a Packer build may be part of one)
    retries: int = 5  # new deliveries after a worker stopped answering

    def __post_init__(self) -> None:
        if not 1 <= self.heartbeat_seconds <= self.timeout_seconds:
            raise ValueError("heartbeat_seconds must be between 1 and timeout_seconds")


def tick_task(queue_url: str, settings: TickSettings) -> dict[str, Any]:
    """The Tick state: a message with the task token for a worker, the answer in ``$.tick``."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {
            "QueueUrl": queue_url,
            "MessageBody": {
                "task_token.$": "$$.Task.Token",
                "unit.$": "$.unit",
                "wave.$": "$.wave",
                "plan.$": "$.plan",
                "execution.$": "$$.Execution.Id",
                "heartbeat_seconds": settings.heartbeat_seconds,
            },
        },
        "ResultPath": "$.tick",
        "HeartbeatSeconds": settings.heartbeat_seconds,
        "TimeoutSeconds": settings.timeout_seconds,
        "Retry": [
            {
                "ErrorEquals": ["States.Timeout", "States.HeartbeatTimeout"],
                "IntervalSeconds": 1,
                "MaxAttempts": settings.retries,
                "BackoffRate": 1.0,
            },
            {
                # the tick raised (AWS throttled past its retries, a lock held elsewhere):
                # ticks are idempotent, so asking again is safe
                "ErrorEquals": [TICK_ERROR],
                "IntervalSeconds": 5,
                "MaxAttempts": 3,
                "BackoffRate": 2.0,
            },
        ],
        "Next": "Decide",
    }


def unit_loop(queue_url: str, settings: TickSettings) -> dict[str, Any]:
    """The states one unit runs through until it converged or failed."""
    return {
        "StartAt": "Tick",
        "States": {
            "Tick": tick_task(queue_url, settings),
            "Decide": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.tick.state", "StringEquals": "converged", "Next": "Converged"},
                    {"Variable": "$.tick.state", "StringEquals": "failed", "Next": "Failed"},
                    {
                        "And": [
                            {"Variable": "$.tick.state", "StringEquals": "progressing"},
                            {"Variable": "$.tick.next_at", "IsPresent": True},
                            {"Variable": "$.tick.next_at", "IsString": True},
                        ],
                        "Next": "WaitUntil",
                    },
                    {
                        "Or": [
                            {"Variable": "$.tick.state", "StringEquals": "progressing"},
                            {"Variable": "$.tick.state", "StringEquals": "waiting"},
                        ],
                        "Next": "WaitPoll",
                    },
                ],
                "Default": "UnknownAnswer",
            },
            "WaitUntil": {"Type": "Wait", "TimestampPath": "$.tick.next_at", "Next": "Tick"},
            "WaitPoll": {"Type": "Wait", "SecondsPath": "$.poll_seconds", "Next": "Tick"},
            "Converged": {"Type": "Succeed"},
            "Failed": {"Type": "Fail", "Error": UNIT_FAILED, "CausePath": "$.tick.reason"},
            "UnknownAnswer": {
                "Type": "Fail",
                "Error": UNKNOWN_ANSWER,
                "Cause": "a worker answered a tick with a state the state machine does not know",
            },
        },
    }


def definition(queue_url: str, settings: TickSettings | None = None) -> dict[str, Any]:
    """The state machine's definition for ticks sent to ``queue_url``."""
    settings = settings or TickSettings()
    units = {
        "Type": "Map",
        "ItemsPath": "$.wave.units",
        "MaxConcurrencyPath": "$.wave.parallelism",
        "ItemSelector": {
            "unit.$": "$$.Map.Item.Value",
            "wave.$": "$.wave.name",
            "plan.$": "$.plan",
            "poll_seconds.$": "$.poll_seconds",
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            **unit_loop(queue_url, settings),
        },
        "ResultPath": None,
        "Next": "Bake",
    }
    wave = {
        "StartAt": "Units",
        "States": {
            "Units": units,
            "Bake": {"Type": "Wait", "SecondsPath": "$.wave.bake_seconds", "End": True},
        },
    }
    return {
        "Comment": "immutable-sdk: waves in order, a Map over each wave's units, "
        "a tick loop per unit",
        "StartAt": "Waves",
        "States": {
            "Waves": {
                "Type": "Map",
                "ItemsPath": "$.waves",
                "MaxConcurrency": 1,  # waves in order
                "ItemSelector": {
                    "wave.$": "$$.Map.Item.Value",
                    "plan.$": "$.plan",
                    "poll_seconds.$": "$.poll_seconds",
                },
                "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **wave},
                "ResultPath": None,
                "End": True,
            }
        },
    }


def definition_json(queue_url: str, settings: TickSettings | None = None) -> str:
    """The definition as Step Functions stores it (stable key order: installs compare it)."""
    return json.dumps(definition(queue_url, settings), indent=2, sort_keys=True)
