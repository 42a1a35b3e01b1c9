"""The policy split into documents AWS accepts, and how to attach them.

AWS measures a policy without its white space: a managed policy holds at most 6,144 characters,
a role's inline policies 10,240 in all, and a role takes 10 managed policies (the default quota,
which can be raised to 20). ``pack`` fills managed policies with whole statements in order; a
statement too large for one document alone is cut into parts by its resources, or by the values
of its one list-valued condition. Resources and any-of values are alternatives: the parts allow
exactly what the whole did. A ``ForAllValues`` list (Route 53 record names) cut in parts allows
less, never more: a change batch whose names all belong to one part (the SDK changes one
fleet's record per batch).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import SpecError

MANAGED_POLICY_CHARACTERS = 6_144
INLINE_CHARACTERS_PER_ROLE = 10_240
MANAGED_POLICIES_PER_ROLE = 10  # AWS's default quota; a quota increase allows up to 20
VERSION = "2012-10-17"
# condition operators whose list of values is an "any of": cutting the list keeps the meaning
ANY_OF = ("StringEquals", "StringLike", "ArnEquals", "ArnLike", "ForAnyValue:StringEquals")
PART = "Part"


def size(document: Mapping[str, Any]) -> int:
    """The characters AWS counts: the JSON without any white space."""
    return len(re.sub(r"\s", "", json.dumps(document, separators=(",", ":"))))


def document(statements: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def base_sid(sid: str) -> str:
    """The Sid a statement was made with (``DeregisterTargetsPart2`` -> ``DeregisterTargets``)."""
    return re.sub(rf"{PART}\d+$", "", sid)


@dataclass(frozen=True)
class ManagedPolicy:
    name: str
    document: dict[str, Any]

    @property
    def characters(self) -> int:
        return size(self.document)

    @property
    def statements(self) -> list[dict[str, Any]]:
        return list(self.document["Statement"])


class PolicyTooLarge(SpecError):
    """One value of one statement (an ARN, a record name from the spec) does not fit in a
    managed policy, or a ForAllValues list does (it cannot be cut)."""


def pack(
    whole: Mapping[str, Any], name: str, limit: int = MANAGED_POLICY_CHARACTERS
) -> list[ManagedPolicy]:
    """``whole`` cut into managed policies of at most ``limit`` characters, named ``name-1``,
    ``name-2``... (numbered even when there is one, so that a spec that grows keeps its first
    policy's name). Statements keep their order; each goes into the first policy with room."""
    bins: list[list[dict[str, Any]]] = []
    for statement in whole["Statement"]:
        for part in split(statement, limit):
            for statements in bins:
                if size(document([*statements, part])) <= limit:
                    statements.append(part)
                    break
            else:
                bins.append([part])
    return [ManagedPolicy(f"{name}-{n}", document(s)) for n, s in enumerate(bins, 1)]


def split(statement: Mapping[str, Any], limit: int) -> list[dict[str, Any]]:
    """``statement`` as parts that each fit in a policy of ``limit`` characters alone."""
    if size(document([statement])) <= limit:
        return [dict(statement)]
    resources = _list(statement.get("Resource", []))
    lists = [
        (operator, key)
        for operator, block in statement.get("Condition", {}).items()
        if operator in ANY_OF or operator.startswith("ForAllValues:")
        for key, values in block.items()
        if isinstance(values, list) and len(values) > 1
    ]
    if len(resources) > 1:
        chunks = _chunks(resources, lambda r: {**statement, "Resource": r}, limit)
    elif len(lists) == 1:
        operator, key = lists[0]
        values = statement["Condition"][operator][key]

        def with_values(v: list[Any]) -> dict[str, Any]:
            condition = {**statement["Condition"]}
            condition[operator] = {**condition[operator], key: v}
            return {**statement, "Condition": condition}

        chunks = _chunks(values, with_values, limit)
    else:
        raise PolicyTooLarge(f"statement {statement.get('Sid')} alone exceeds {limit} characters")
    sid = str(statement.get("Sid", ""))
    return [{**c, "Sid": f"{sid}{PART}{n}"} for n, c in enumerate(chunks, 1)]


def _chunks(values: list[Any], make: Any, limit: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    current: list[Any] = []
    for value in values:
        # the Sid grows by "PartNN": leave room for it
        if current and size(document([make([*current, value])])) + len(PART) + 3 > limit:
            out.append(make(current))
            current = []
        current.append(value)
    out.append(make(current))
    for part in out:
        if size(document([part])) + len(PART) + 3 > limit:
            raise PolicyTooLarge(f"statement {part.get('Sid')}: one value exceeds {limit}")
    return out


def _list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value)


def attach_hint(policies: Sequence[ManagedPolicy], account: str) -> list[str]:
    """How to attach ``policies`` to the role that runs the SDK, and the limits that apply."""
    total = sum(p.characters for p in policies)
    acct = account if account != "*" else "ACCOUNT"
    n = len(policies)
    lines = [
        f"{n} managed {'policy' if n == 1 else 'policies'} "
        f"({', '.join(f'{p.name}: {p.characters:,}' for p in policies)} characters; "
        f"AWS allows {MANAGED_POLICY_CHARACTERS:,} each, white space not counted)",
        "create each and attach it to the role that runs immutable-sdk (CI's deploy role):",
    ]
    for p in policies:
        lines.append(
            f"  aws iam create-policy --policy-name {p.name} --policy-document file://{p.name}.json"
        )
        lines.append(
            f"  aws iam attach-role-policy --role-name ROLE "
            f"--policy-arn arn:aws:iam::{acct}:policy/{p.name}"
        )
    lines.append(
        f"a role takes {MANAGED_POLICIES_PER_ROLE} managed policies by default (a quota increase "
        f"allows 20): these use {n} of them"
    )
    fits = "fit" if total <= INLINE_CHARACTERS_PER_ROLE else "do not fit"
    lines.append(
        f"as inline policies instead: a role's inline policies hold "
        f"{INLINE_CHARACTERS_PER_ROLE:,} characters in all; these need {total:,} ({fits})"
    )
    if n > MANAGED_POLICIES_PER_ROLE:
        lines.append(
            f"warning: {n} policies exceed the default quota of {MANAGED_POLICIES_PER_ROLE} per "
            "role: raise it, or split the spec's fleets over several roles"
        )
    return lines
