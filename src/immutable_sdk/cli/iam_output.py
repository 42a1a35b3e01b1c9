"""``iam-policy``'s outputs: text, JSON, Terraform and CloudFormation, the same policies in each.

A JSON policy cannot hold comments, so what each statement is for (and why it is on ``*``)
is printed beside the documents in text, as a field with ``-o json``, as comments with
``-o terraform`` and as resource metadata with ``-o cloudformation``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..core.iam.pack import (
    INLINE_CHARACTERS_PER_ROLE,
    MANAGED_POLICIES_PER_ROLE,
    MANAGED_POLICY_CHARACTERS,
    ManagedPolicy,
    attach_hint,
)
from ..core.iam.purposes import explain

FORMATS = ("text", "json", "terraform", "cloudformation")
ROLE_VARIABLE = "immutable_sdk_role_name"
ROLE_PARAMETER = "RoleName"


@dataclass(frozen=True)
class PolicyOutput:
    project: str
    account: str
    policies: Sequence[ManagedPolicy]
    notes: Sequence[str]

    def of(self, n: int) -> str:
        return f"{n} of {len(self.policies)}"


def render(out: PolicyOutput, fmt: str) -> str:
    return {
        "text": text,
        "json": as_json,
        "terraform": terraform,
        "cloudformation": cloudformation,
    }[fmt](out)


def text(out: PolicyOutput) -> str:
    lines: list[str] = []
    for n, policy in enumerate(out.policies, 1):
        lines.append(
            f"== {policy.name} (managed policy {out.of(n)}, {policy.characters:,} of "
            f"{MANAGED_POLICY_CHARACTERS:,} characters)"
        )
        lines.append(json.dumps(policy.document, indent=2))
        lines.append("what each statement is for:")
        for statement in policy.statements:
            why = explain(statement)
            # " - ", not ": ": "PassInstanceRole: ..." would read as a secret to the redactor
            lines.append(f"  {why['sid']} - {why['purpose']}")
            if why["on_star"]:
                lines.append(f"    on *: {why['on_star']}")
        lines.append("")
    lines.append("== how to attach")
    lines += attach_hint(out.policies, out.account)
    return "\n".join(lines)


def as_json(out: PolicyOutput) -> str:
    data = {
        "project": out.project,
        "limits": {
            "managed_policy_characters": MANAGED_POLICY_CHARACTERS,
            "inline_characters_per_role": INLINE_CHARACTERS_PER_ROLE,
            "managed_policies_per_role": MANAGED_POLICIES_PER_ROLE,
        },
        "characters": sum(p.characters for p in out.policies),
        "policies": [
            {
                "name": p.name,
                "characters": p.characters,
                "document": p.document,
                "statements": [explain(s) for s in p.statements],
            }
            for p in out.policies
        ],
        "attach": attach_hint(out.policies, out.account),
        "notes": list(out.notes),
    }
    return json.dumps(data, indent=2)


def _identifier(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _hcl_string(value: str) -> str:
    """A JSON string literal that HCL reads as the same string (no template sequences)."""
    quoted = json.dumps(value).replace("\\b", "\\u0008").replace("\\f", "\\u000c")
    return quoted.replace("${", "$${").replace("%{", "%%{")


def _hcl(value: Any, indent: int) -> str:
    """``value`` as an HCL expression in JSON's shape (``{"k": v}``, ``[a, b]``)."""
    pad = "  " * (indent + 1)
    if isinstance(value, dict):
        items = [f"{pad}{_hcl_string(str(k))}: {_hcl(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value) and len(value) <= 1:
            return "[" + ", ".join(_hcl_string(v) for v in value) + "]"
        items = [f"{pad}{_hcl(v, indent + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    if isinstance(value, str):
        return _hcl_string(value)
    return json.dumps(value)


def terraform(out: PolicyOutput) -> str:
    lines = [
        f"# immutable-sdk iam-policy -o terraform: project {out.project}, "
        f"{len(out.policies)} managed policies, attached to the role that runs immutable-sdk.",
        f"# A role takes {MANAGED_POLICIES_PER_ROLE} managed policies by default; each policy "
        f"holds {MANAGED_POLICY_CHARACTERS:,} characters.",
        "",
        f'variable "{ROLE_VARIABLE}" {{',
        "  type        = string",
        '  description = "The IAM role that runs immutable-sdk (CI\'s deploy role)."',
        "}",
    ]
    for n, policy in enumerate(out.policies, 1):
        ident = _identifier(policy.name)
        statements = []
        for statement in policy.statements:
            why = explain(statement)
            comment = [f"      # {why['sid']} - {why['purpose']}"]
            if why["on_star"]:
                comment.append(f"      # on *: {why['on_star']}")
            statements.append("\n".join(comment) + "\n      " + _hcl(statement, 3))
        body = (
            "{\n"
            f'    "Version": {_hcl_string(policy.document["Version"])},\n'
            '    "Statement": [\n' + ",\n".join(statements) + "\n    ]\n  }"
        )
        lines += [
            "",
            f'resource "aws_iam_policy" "{ident}" {{',
            f"  name        = {_hcl_string(policy.name)}",
            f"  description = {_hcl_string(_description(out, n))}",
            f"  policy = jsonencode({body})",
            "}",
            "",
            f'resource "aws_iam_role_policy_attachment" "{ident}" {{',
            f"  role       = var.{ROLE_VARIABLE}",
            f"  policy_arn = aws_iam_policy.{ident}.arn",
            "}",
        ]
    return "\n".join(lines)


def _description(out: PolicyOutput, n: int) -> str:
    return f"immutable-sdk: what applying project {out.project} needs ({out.of(n)})"


def cloudformation(out: PolicyOutput) -> str:
    import yaml

    resources: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    for n, policy in enumerate(out.policies, 1):
        logical = f"ImmutableSdkPolicy{n}"
        resources[logical] = {
            "Type": "AWS::IAM::ManagedPolicy",
            "Metadata": {
                "immutable-sdk": {
                    "characters": policy.characters,
                    # CloudFormation refuses nulls, even in metadata
                    "statements": [
                        {k: v for k, v in explain(s).items() if v is not None}
                        for s in policy.statements
                    ],
                }
            },
            "Properties": {
                "ManagedPolicyName": policy.name,
                "Description": _description(out, n),
                "Roles": [{"Ref": ROLE_PARAMETER}],
                "PolicyDocument": policy.document,
            },
        }
        outputs[f"{logical}Arn"] = {"Value": {"Ref": logical}}
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"immutable-sdk iam-policy: project {out.project}, "
        f"{len(out.policies)} managed policies attached to the role that runs immutable-sdk",
        "Parameters": {
            ROLE_PARAMETER: {
                "Type": "String",
                "Description": "The IAM role that runs immutable-sdk (CI's deploy role)",
            }
        },
        "Resources": resources,
        "Outputs": outputs,
    }
    return str(yaml.safe_dump(template, sort_keys=False, width=1000))
