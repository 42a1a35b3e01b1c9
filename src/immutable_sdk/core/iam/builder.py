"""Statements of an IAM policy, by Sid, and the rules every condition here follows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...plugin import TAG_PROJECT

REQUESTED_REGION = "aws:RequestedRegion"


@dataclass
class PolicyBuilder:
    """Statements by Sid; a Sid used twice accumulates actions and resources."""

    region: str
    account: str = "*"
    partition: str = "aws"
    statements: dict[str, dict[str, Any]] = field(default_factory=dict)

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        where = f"{self.region if region else ''}:{self.account if account else ''}"
        return f"arn:{self.partition}:{service}:{where}:{resource}"

    def any_region(self, service: str, resource: str, *, account: bool = True) -> str:
        """The resource's ARN in every region (``*``): the policy does not grow with regions."""
        return f"arn:{self.partition}:{service}:*:{self.account if account else ''}:{resource}"

    def allow(
        self,
        sid: str,
        actions: Iterable[str],
        resources: Iterable[str] = ("*",),
        condition: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        regions: Iterable[str] = (),
    ) -> None:
        """Allow ``actions`` on ``resources``; ``regions``: only in those (``aws:RequestedRegion``),
        for a statement on ARN patterns whose regions are ``*`` and that has no tag condition."""
        actions = list(actions)
        if not actions:
            return
        conditions: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (condition or {}).items()}
        where = sorted(set(regions))
        if where:
            conditions.setdefault("StringEquals", {})[REQUESTED_REGION] = where
        check_condition(sid, conditions)
        entry = self.statements.setdefault(
            sid, {"Sid": sid, "Effect": "Allow", "Action": [], "Resource": []}
        )
        entry["Action"] = sorted(set(entry["Action"]) | set(actions))
        entry["Resource"] = sorted(set(entry["Resource"]) | set(resources))
        if conditions:
            entry["Condition"] = conditions

    def document(self) -> dict[str, Any]:
        statements = []
        for s in self.statements.values():
            resources = s["Resource"]
            statements.append({**s, "Resource": resources[0] if len(resources) == 1 else resources})
        return {"Version": "2012-10-17", "Statement": statements}


def check_condition(sid: str, condition: Mapping[str, Mapping[str, Any]]) -> None:
    """``ForAllValues`` is true when the key is absent from the request (there is no value that
    fails it), so it allows everything on an action that does not carry the key: every
    ``ForAllValues`` here comes with ``Null: false`` on the same key, which requires it."""
    present = {k for k, v in condition.get("Null", {}).items() if v == "false"}
    for operator, block in condition.items():
        if operator.startswith("ForAllValues:"):
            missing = set(block) - present
            if missing:
                raise ValueError(f"{sid}: ForAllValues on {sorted(missing)} without a Null check")


def retag_guard(project: str) -> dict[str, dict[str, str]]:
    """Tagging with the project's tag, of a resource that has none yet or already has it: so
    a resource of another project cannot be re-tagged into this project's reach."""
    return {
        "StringEquals": {f"aws:RequestTag/{TAG_PROJECT}": project},
        "StringEqualsIfExists": {f"aws:ResourceTag/{TAG_PROJECT}": project},
    }
