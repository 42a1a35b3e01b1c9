"""``orchestrator install``: the project's queues, the state machine's role and the state machine.

Idempotent: each resource is created when missing and changed only when it differs from what
this version of the SDK would create, so a second install reports nothing changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ...aws.stepfunctions import STATES_TRUST, Orchestration
from ..iam.orchestrator import orchestrator_policy
from .definition import definition_json
from .resources import MAX_RECEIVES, Orchestrator

DLQ_RETENTION = 14 * 24 * 3600  # seconds: SQS's longest, time to look at a dead message
QUEUE_RETENTION = 4 * 24 * 3600


def queue_attributes(orch: Orchestrator, dead_letter_arn: str) -> dict[str, str]:
    """The work queue's attributes (SQS takes them as strings)."""
    return {
        "VisibilityTimeout": str(orch.visibility_timeout),
        "ReceiveMessageWaitTimeSeconds": "20",
        "MessageRetentionPeriod": str(QUEUE_RETENTION),
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": str(MAX_RECEIVES)}
        ),
    }


def dead_letter_attributes() -> dict[str, str]:
    return {"MessageRetentionPeriod": str(DLQ_RETENTION)}


@dataclass
class Installed:
    """What an install found or made: ARNs and URLs, and what it changed."""

    state_machine_arn: str = ""
    queue_url: str = ""
    dead_letter_queue_url: str = ""
    role_arn: str = ""
    state_table: str = ""
    changed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "state_machine_arn": self.state_machine_arn,
            "queue_url": self.queue_url,
            "dead_letter_queue_url": self.dead_letter_queue_url,
            "role_arn": self.role_arn,
            "state_table": self.state_table,
            "changed": list(self.changed),
        }


def install(
    orch: Orchestrator, aws: Orchestration, *, role_arn: str | None = None, account: str = "*"
) -> Installed:
    """Create or update the project's orchestrator; ``role_arn``: use that role for the state
    machine instead of creating ``orch.orchestrator_role``."""
    done = Installed(state_table=orch.state_table)
    dlq, changed = aws.ensure_queue(orch.dead_letter_queue, dead_letter_attributes())
    done.dead_letter_queue_url = dlq.url
    if changed:
        done.changed.append(f"queue {orch.dead_letter_queue}")
    queue, changed = aws.ensure_queue(orch.queue, queue_attributes(orch, dlq.arn))
    done.queue_url = queue.url
    if changed:
        done.changed.append(f"queue {orch.queue}")
    if role_arn is None:
        role_arn, changed = aws.ensure_role(
            orch.orchestrator_role, STATES_TRUST, orchestrator_policy(orch, account)
        )
        if changed:
            done.changed.append(f"role {orch.orchestrator_role}")
    done.role_arn = role_arn
    machine, changed = aws.ensure_state_machine(
        orch.state_machine,
        definition_json(queue.url, orch.settings),
        role_arn,
        {"immutable-sdk:project": orch.project},
    )
    done.state_machine_arn = machine
    if changed:
        done.changed.append(f"state machine {orch.state_machine}")
    return done
