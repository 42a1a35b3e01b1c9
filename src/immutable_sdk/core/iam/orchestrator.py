"""The policies of the Step Functions orchestrator: the state machine's role and a worker's.

The state machine only sends Tick messages to the project's work queue. A worker runs ticks,
which do what ``apply`` does (``policy.policy_document``), and besides takes messages from
that queue and answers their task tokens; it may also start and watch the project's
executions (``apply --on step-functions`` and ``status`` from the same CI runner).
"""

from __future__ import annotations

from typing import Any

from ..orchestrator.resources import Orchestrator
from .builder import PolicyBuilder

TASK_ANSWERS = ("states:SendTaskFailure", "states:SendTaskHeartbeat", "states:SendTaskSuccess")


def _queue_arn(p: PolicyBuilder, orch: Orchestrator) -> str:
    return f"arn:{p.partition}:sqs:{orch.region}:{p.account}:{orch.queue}"


def orchestrator_policy(orch: Orchestrator, account: str = "*") -> dict[str, Any]:
    """The inline policy of the state machine's role."""
    p = PolicyBuilder(orch.region, account)
    p.allow("TickQueueSend", ["sqs:SendMessage"], [_queue_arn(p, orch)])
    return p.document()


def worker_statements(orch: Orchestrator, account: str = "*") -> list[dict[str, Any]]:
    """What a worker needs besides ``apply``'s policy."""
    p = PolicyBuilder(orch.region, account)
    p.allow(
        "TickQueueWork",
        [
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
            "sqs:ReceiveMessage",
        ],
        [_queue_arn(p, orch)],
    )
    # task tokens carry their own authority: these actions name no resource
    p.allow("TickAnswers", TASK_ANSWERS)
    machine = (
        f"arn:{p.partition}:states:{orch.region}:{p.account}:stateMachine:{orch.state_machine}"
    )
    executions = (
        f"arn:{p.partition}:states:{orch.region}:{p.account}:execution:{orch.state_machine}:*"
    )
    p.allow(
        "Executions",
        [
            "states:DescribeExecution",
            "states:DescribeStateMachine",
            "states:GetExecutionHistory",
            "states:ListExecutions",
            "states:StartExecution",
            "states:StopExecution",
        ],
        [machine, executions],
    )
    p.allow("FindStateMachine", ["states:ListStateMachines"])
    return list(p.document()["Statement"])
