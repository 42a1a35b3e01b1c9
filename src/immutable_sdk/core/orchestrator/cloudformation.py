"""``orchestrator install --output cloudformation``: the same resources as a template.

For teams that deploy through templates: the work queue and its dead-letter queue, the state
machine's role and the state machine, with the very definition ``install`` creates (the queue's
URL is substituted by CloudFormation: ``Fn::Sub`` of ``${TickQueue}``, a queue's Ref).
"""

from __future__ import annotations

import json
from typing import Any

from ...aws.stepfunctions import STATES_TRUST
from .definition import definition
from .install import DLQ_RETENTION, QUEUE_RETENTION
from .resources import MAX_RECEIVES, Orchestrator

QUEUE_URL_MARK = "${TickQueue}"  # the queue's Ref (its URL) in the definition's Fn::Sub


def template(orch: Orchestrator) -> dict[str, Any]:
    """The CloudFormation template (a JSON-able document)."""
    states = json.dumps(definition(QUEUE_URL_MARK, orch.settings), indent=2, sort_keys=True)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"immutable-sdk orchestrator for project {orch.project} "
        f"(state table {orch.state_table})",
        "Resources": {
            "TickDeadLetterQueue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "QueueName": orch.dead_letter_queue,
                    "MessageRetentionPeriod": DLQ_RETENTION,
                },
            },
            "TickQueue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "QueueName": orch.queue,
                    "VisibilityTimeout": orch.visibility_timeout,
                    "ReceiveMessageWaitTimeSeconds": 20,
                    "MessageRetentionPeriod": QUEUE_RETENTION,
                    "RedrivePolicy": {
                        "deadLetterTargetArn": {"Fn::GetAtt": ["TickDeadLetterQueue", "Arn"]},
                        "maxReceiveCount": MAX_RECEIVES,
                    },
                },
            },
            "OrchestratorRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": orch.orchestrator_role,
                    "AssumeRolePolicyDocument": STATES_TRUST,
                    "Policies": [
                        {
                            "PolicyName": orch.orchestrator_role,
                            "PolicyDocument": {
                                "Version": "2012-10-17",
                                "Statement": [
                                    {
                                        "Sid": "TickQueueSend",
                                        "Effect": "Allow",
                                        "Action": ["sqs:SendMessage"],
                                        "Resource": {"Fn::GetAtt": ["TickQueue", "Arn"]},
                                    }
                                ],
                            },
                        }
                    ],
                },
            },
            "StateMachine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "StateMachineName": orch.state_machine,
                    "StateMachineType": "STANDARD",
                    "RoleArn": {"Fn::GetAtt": ["OrchestratorRole", "Arn"]},
                    "DefinitionString": {"Fn::Sub": states},
                    "Tags": [{"Key": "immutable-sdk:project", "Value": orch.project}],
                },
            },
        },
        "Outputs": {
            "StateMachineArn": {"Value": {"Ref": "StateMachine"}},
            "TickQueueUrl": {"Value": {"Ref": "TickQueue"}},
            "TickDeadLetterQueueUrl": {"Value": {"Ref": "TickDeadLetterQueue"}},
        },
    }


def render(orch: Orchestrator, fmt: str = "json") -> str:
    """The template as JSON or YAML text."""
    doc = template(orch)
    if fmt == "yaml":
        import yaml

        return str(yaml.safe_dump(doc, sort_keys=False, width=100))
    return json.dumps(doc, indent=2) + "\n"
