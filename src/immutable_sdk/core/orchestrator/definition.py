"""The one generic state machine, as Amazon States Language, generated from code.

Not one per strategy or per spec: the execution's input (``execution.execution_input``) carries
the waves, their stages and their units, so a single state machine per project runs any plan::

    Waves (Map over $.waves, one at a time)
      Stages (Map over the wave's stages, one at a time: depends_on levels, regions in flight)
        Units (Map over the stage's units, MaxConcurrencyPath = the stage's parallelism)
          Tick (SQS sendMessage.waitForTaskToken; Retry on States.Timeout / HeartbeatTimeout
                and on a tick that raised; Catch: the unit failed, its reason the error)
          Decide (Choice on $.tick.state)
            converged -> Converged (Pass: the unit's outcome)
            failed    -> Failed (Pass: the outcome, "unit: reason" as its failure)
            a next_at -> WaitUntil (Wait, TimestampPath $.tick.next_at) -> Tick
            otherwise -> WaitPoll (Wait, SecondsPath $.poll_seconds) -> Tick
        Outcomes, AnyFailed (Pass: States.ArrayContains of the units' outcomes, "failed")
        Check (Choice: none failed -> StageDone (Succeed); some -> Failures)
        Failures, Cause (Pass: $.outcomes[*].failure, States.Format of them)
        StageFailed (Fail, ImmutableSdk.UnitFailed, the failures as its cause)

A wave's bake has no state of its own: the reconcile tick watches it. A unit of a wave with a
``bake`` answers ``progressing`` after its rollout until it has been watched for that long (a
WaitUntil between each look), so its stage, and the next wave, start only after it baked; a
failed watch rolls the unit back and it fails. (A blind Wait after the wave would watch
nothing, and would bake the wave twice.)

A unit's branch never fails: a failed unit ends in a Pass, so Step Functions never stops its
siblings mid-rollout (a Map stops every running branch when one fails). The tick answers
``failed`` only once its rollback is over (``reconcile_tick``). When the stage's last unit has
ended, a failure fails the stage, which fails the wave and the execution: no later stage or
wave starts, and the execution's cause names each failed unit and its reason.

A worker that dies mid-tick stops heartbeating: the task times out after ``heartbeat_seconds``
and the Retry sends a new message with a new token, which another worker takes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

UNIT_FAILED = "ImmutableSdk.UnitFailed"
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
    """The states one unit runs through until it converged or failed; its branch's output is
    ``{"unit", "outcome"}``, with ``failure`` (``"unit: reason"``) when it failed."""
    tick = tick_task(queue_url, settings)
    tick["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "TickBroken"}]
    return {
        "StartAt": "Tick",
        "States": {
            "Tick": tick,
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
            "Converged": {
                "Type": "Pass",
                "Parameters": {"unit.$": "$.unit.key", "outcome": "converged"},
                "End": True,
            },
            "Failed": _failed("States.Format('{}: {}', $.unit.key, $.tick.reason)"),
            "TickBroken": _failed(
                "States.Format('{}: its tick failed ({}): {}', $.unit.key, $.error.Error, "
                "$.error.Cause)"
            ),
            "UnknownAnswer": _failed(
                "States.Format('{}: a worker answered a tick with a state the state machine "
                "does not know: {}', $.unit.key, $.tick.state)"
            ),
        },
    }


def _failed(failure: str) -> dict[str, Any]:
    """A unit's end after it failed: its outcome, and ``failure`` (an intrinsic function)."""
    return {
        "Type": "Pass",
        "Parameters": {"unit.$": "$.unit.key", "outcome": "failed", "failure.$": failure},
        "End": True,
    }


def stage_states(queue_url: str, settings: TickSettings) -> dict[str, Any]:
    """One stage: its units in parallel, then the execution fails if one of them failed."""
    units = {
        "Type": "Map",
        "ItemsPath": "$.stage.units",  # indices into the wave's units
        "MaxConcurrencyPath": "$.stage.parallelism",
        "ItemSelector": {
            "unit.$": "States.ArrayGetItem($.units, $$.Map.Item.Value)",
            "wave.$": "$.wave",
            "plan.$": "$.plan",
            "poll_seconds.$": "$.poll_seconds",
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            **unit_loop(queue_url, settings),
        },
        "ResultPath": "$.outcomes",
        "Next": "Outcomes",
    }
    return {
        "StartAt": "Units",
        "States": {
            "Units": units,
            # every branch has an outcome; only failed ones have a failure (so the failures
            # are projected only when there is one: a path that matches nothing is an error)
            "Outcomes": {
                "Type": "Pass",
                "Parameters": {"outcomes.$": "$.outcomes[*].outcome"},
                "ResultPath": "$.failed",
                "Next": "AnyFailed",
            },
            "AnyFailed": {
                "Type": "Pass",
                "Parameters": {"any.$": "States.ArrayContains($.failed.outcomes, 'failed')"},
                "ResultPath": "$.failed",
                "Next": "Check",
            },
            "Check": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.failed.any", "BooleanEquals": True, "Next": "Failures"}
                ],
                "Default": "StageDone",
            },
            "Failures": {
                "Type": "Pass",
                "Parameters": {"failures.$": "$.outcomes[*].failure"},
                "ResultPath": "$.failed",
                "Next": "Cause",
            },
            "Cause": {
                "Type": "Pass",
                "Parameters": {
                    "cause.$": "States.Format('{} of {} unit(s) of wave {} failed; later stages "
                    "and waves were not started: {}', States.ArrayLength($.failed.failures), "
                    "States.ArrayLength($.outcomes), $.wave, "
                    "States.JsonToString($.failed.failures))"
                },
                "ResultPath": "$.failed",
                "Next": "StageFailed",
            },
            "StageFailed": {"Type": "Fail", "Error": UNIT_FAILED, "CausePath": "$.failed.cause"},
            "StageDone": {"Type": "Succeed"},
        },
    }


def definition(queue_url: str, settings: TickSettings | None = None) -> dict[str, Any]:
    """The state machine's definition for ticks sent to ``queue_url``."""
    settings = settings or TickSettings()
    stages = {
        "Type": "Map",
        "ItemsPath": "$.wave.stages",
        "MaxConcurrency": 1,  # stages in order: a dependency's stage ends before its dependants'
        "ItemSelector": {
            "stage.$": "$$.Map.Item.Value",
            "units.$": "$.wave.units",
            "wave.$": "$.wave.name",
            "plan.$": "$.plan",
            "poll_seconds.$": "$.poll_seconds",
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            **stage_states(queue_url, settings),
        },
        "ResultPath": None,
        "End": True,
    }
    wave = {"StartAt": "Stages", "States": {"Stages": stages}}
    return {
        "Comment": "immutable-sdk: waves in order, stages in order within a wave, a Map over "
        "each stage's units, a tick loop per unit",
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
