"""Resolve a spec's network references (ids or names) to AWS ids, in batches.

A spec may name subnets, security groups and target groups either by id/ARN or by name, so that
the same spec runs against the sandbox (whose ids are random) and against an account. Each kind
is resolved with one describe call for the references that look like ids and one for those that
look like names, never one call per reference. A reference that looks like an id but is not found
as one is then looked up by its Name tag (the sandbox tags what it seeds that way, because it
cannot choose ids); whatever is still missing raises one AwsError that lists every missing
reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from ..errors import AwsError
from .session import aws_errors, error_code

Label = Callable[[Mapping[str, Any]], str | None]


def _unique(refs: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(refs))


def _region(client: Any) -> str:
    return str(getattr(getattr(client, "meta", None), "region_name", "") or "?")


def _name_tag(resource: Mapping[str, Any]) -> str | None:
    for tag in resource.get("Tags", []) or []:
        if tag.get("Key") == "Name":
            return str(tag.get("Value"))
    return None


def _group_name(resource: Mapping[str, Any]) -> str | None:
    name = resource.get("GroupName")
    return str(name) if name is not None else None


FILTER_VALUES = 200  # values per filter in one EC2 describe call: stay within AWS's limit


def _paginate(client: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        items.extend(page.get(key, []))
    return items


def _filtered(
    client: Any, operation: str, key: str, name: str, values: Sequence[str]
) -> list[dict[str, Any]]:
    """Items matching any of ``values`` for filter ``name``, FILTER_VALUES values a call."""
    items: list[dict[str, Any]] = []
    for i in range(0, len(values), FILTER_VALUES):
        chunk = list(values[i : i + FILTER_VALUES])
        items += _paginate(client, operation, key, Filters=[{"Name": name, "Values": chunk}])
    return items


def _by_name(
    found: Mapping[str, list[str]], kind: str, region: str
) -> tuple[dict[str, str], dict[str, str]]:
    """One id per name; a name that several resources carry is an error, not a guess."""
    resolved: dict[str, str] = {}
    ambiguous: dict[str, str] = {}
    for name, ids in found.items():
        ids = sorted(set(ids))
        if len(ids) == 1:
            resolved[name] = ids[0]
        else:
            ambiguous[name] = f"{kind} {name!r} is ambiguous in {region}: {', '.join(ids)}"
    return resolved, ambiguous


def _raise_missing(
    refs: Sequence[str],
    resolved: Mapping[str, str],
    kind: str,
    how: str,
    region: str,
    problems: Mapping[str, str] | None = None,
) -> None:
    problems = problems or {}
    messages = [
        problems.get(ref, f"{kind} {ref!r} not found ({how}) in {region}")
        for ref in refs
        if ref not in resolved
    ]
    if messages:
        raise AwsError("; ".join(messages), code="NotFound")


def _ec2_resolve(
    ec2: Any,
    refs: Iterable[str],
    *,
    kind: str,
    id_prefix: str,
    id_filter: str,
    name_filters: Sequence[tuple[str, Label]],
    how: str,
    operation: str,
    key: str,
    id_key: str,
) -> list[str]:
    wanted = _unique(refs)
    region = _region(ec2)
    resolved: dict[str, str] = {}
    with aws_errors(f"resolving {kind}s"):
        ids = [r for r in wanted if r.startswith(id_prefix)]
        if ids:
            items = _filtered(ec2, operation, key, id_filter, ids)
            resolved.update({str(item[id_key]): str(item[id_key]) for item in items})
        names = [r for r in wanted if r not in resolved]
        problems: dict[str, str] = {}
        for name_filter, label_of in name_filters:
            if not names:
                break
            items = _filtered(ec2, operation, key, name_filter, names)
            found: dict[str, list[str]] = {}
            for item in items:
                label = label_of(item)
                if label in names:
                    found.setdefault(label, []).append(str(item[id_key]))
            by_name, ambiguous = _by_name(found, kind, region)
            resolved.update(by_name)
            problems.update(ambiguous)
            names = [n for n in names if n not in by_name and n not in found]
    _raise_missing(wanted, resolved, kind, how, region, problems)
    return [resolved[r] for r in wanted]


def resolve_subnets(ec2: Any, refs: Iterable[str]) -> list[str]:
    """Subnet ids for ``refs`` (``subnet-...`` ids, verified, or Name tags), in order."""
    return _ec2_resolve(
        ec2,
        refs,
        kind="subnet",
        id_prefix="subnet-",
        id_filter="subnet-id",
        name_filters=(("tag:Name", _name_tag),),
        how="by id or Name tag",
        operation="describe_subnets",
        key="Subnets",
        id_key="SubnetId",
    )


def resolve_security_groups(ec2: Any, refs: Iterable[str]) -> list[str]:
    """Security group ids for ``refs`` (``sg-...`` ids, group names, or Name tags), in order."""
    return _ec2_resolve(
        ec2,
        refs,
        kind="security group",
        id_prefix="sg-",
        id_filter="group-id",
        name_filters=(("group-name", _group_name), ("tag:Name", _name_tag)),
        how="by id, group name or Name tag",
        operation="describe_security_groups",
        key="SecurityGroups",
        id_key="GroupId",
    )


def resolve_target_groups(elbv2: Any, refs: Iterable[str]) -> list[str]:
    """Target group ARNs for ``refs`` (ARNs, verified, or names), in order.

    DescribeTargetGroups fails as a whole when any ARN or name is unknown; only then is the
    account's list read, to name every missing reference at once.
    """
    wanted = _unique(refs)
    region = _region(elbv2)
    arns = [r for r in wanted if r.startswith("arn:")]
    names = [r for r in wanted if not r.startswith("arn:")]
    resolved: dict[str, str] = {}
    with aws_errors("resolving target groups"):
        for field, values in (("TargetGroupArns", arns), ("Names", names)):
            if not values:
                continue
            try:
                groups = _paginate(
                    elbv2, "describe_target_groups", "TargetGroups", **{field: values}
                )
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) not in ("TargetGroupNotFound", "ValidationError"):
                    raise
                groups = _paginate(elbv2, "describe_target_groups", "TargetGroups")
            for group in groups:
                arn, name = str(group["TargetGroupArn"]), str(group["TargetGroupName"])
                if arn in values:
                    resolved[arn] = arn
                if name in values:
                    resolved[name] = arn
    _raise_missing(wanted, resolved, "target group", "by ARN or name", region)
    return [resolved[r] for r in wanted]


@dataclass(frozen=True)
class NetworkIds:
    """Subnet, security group and target group references resolved to ids, many at once."""

    subnets: Mapping[str, str]
    security_groups: Mapping[str, str]
    target_groups: Mapping[str, str]

    @classmethod
    def resolve(
        cls,
        ec2: Any,
        elbv2: Any,
        *,
        subnets: Iterable[str] = (),
        security_groups: Iterable[str] = (),
        target_groups: Iterable[str] = (),
    ) -> NetworkIds:
        """A few calls for every reference of every fleet, instead of a few per fleet."""

        def by_ref(
            refs: Iterable[str], resolve: Callable[[Any, list[str]], list[str]], client: Any
        ) -> dict[str, str]:
            wanted = _unique(refs)
            return dict(zip(wanted, resolve(client, wanted), strict=True)) if wanted else {}

        return cls(
            by_ref(subnets, resolve_subnets, ec2),
            by_ref(security_groups, resolve_security_groups, ec2),
            by_ref(target_groups, resolve_target_groups, elbv2),
        )

    def lookup(self, kind: Mapping[str, str], refs: Sequence[str]) -> list[str] | None:
        """The ids of ``refs`` in order (duplicates dropped), or None if one is not known."""
        wanted = _unique(refs)
        if not all(r in kind for r in wanted):
            return None
        return [kind[r] for r in wanted]
