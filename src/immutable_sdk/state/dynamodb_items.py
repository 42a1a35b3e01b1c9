"""How state records become DynamoDB items and back (the key layout is in ``state.dynamodb``).

Strings are ``S``, numbers ``N``; mappings arrive here already as JSON text. An attribute whose
value is None is left out of the item, and reads back as None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import JournalEntry, LockInfo, ReleaseRecord, RolloutRecord
from .records import from_json, optional_text, text, to_json

Attribute = dict[str, str]
Item = Mapping[str, Any]


def key(pk: str, sk: str) -> dict[str, Attribute]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def attr(value: str | float) -> Attribute:
    if isinstance(value, str):
        return {"S": value}
    return {"N": repr(value)}


def attrs(values: Mapping[str, str | float | None]) -> dict[str, Attribute]:
    """DynamoDB attributes for Python values; None leaves the attribute out."""
    return {name: attr(v) for name, v in values.items() if v is not None}


def string(item: Item, name: str) -> str:
    return str(item[name]["S"])


def opt_str(item: Item, name: str) -> str | None:
    return str(item[name]["S"]) if name in item else None


def number(item: Item, name: str) -> float:
    return float(item[name]["N"])


def integer(item: Item, name: str) -> int:
    return int(item[name]["N"])


def lock(fleet: str, item: Item) -> LockInfo:
    return LockInfo(
        fleet, string(item, "owner"), number(item, "acquired_at"), number(item, "lease_until")
    )


def rollout(item: Item) -> RolloutRecord:
    return RolloutRecord(
        id=string(item, "id"),
        fleet=string(item, "fleet"),
        strategy=string(item, "strategy"),
        from_release=opt_str(item, "from_release"),
        to_release=string(item, "to_release"),
        phase=string(item, "phase"),
        started_at=number(item, "started_at"),
        finished_at=number(item, "finished_at") if "finished_at" in item else None,
        outcome=opt_str(item, "outcome"),
        error=opt_str(item, "error"),
        owner=opt_str(item, "owner"),
        steps=tuple(from_json(opt_str(item, "steps"), [])),
        data=from_json(opt_str(item, "data"), {}),
    )


def release(item: Item) -> ReleaseRecord:
    return ReleaseRecord(
        fleet=string(item, "fleet"),
        release=string(item, "release"),
        seq=integer(item, "seq"),
        artifact=from_json(opt_str(item, "artifact"), {}),
        launch_config=from_json(opt_str(item, "launch_config"), {}),
        created_at=number(item, "created_at"),
        rollout=opt_str(item, "rollout"),
    )


def journal_entry(rollout_id: str, item: Item) -> JournalEntry:
    return JournalEntry(
        rollout=rollout_id,
        seq=integer(item, "seq"),
        step_index=integer(item, "step_index"),
        status=string(item, "status"),
        at=number(item, "at"),
        data=from_json(opt_str(item, "data"), {}),
    )


def rollout_values(record: RolloutRecord) -> dict[str, str | float | None]:
    return {
        "id": record.id,
        "fleet": record.fleet,
        "strategy": record.strategy,
        "from_release": record.from_release,
        "to_release": record.to_release,
        "phase": text(record.phase),
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "outcome": optional_text(record.outcome),
        "error": record.error,
        "owner": record.owner,
        "steps": to_json([dict(s) for s in record.steps]),
        "data": to_json(dict(record.data)),
    }
