"""How state records become DynamoDB items and back (the key layout is in ``state.dynamodb``).

Strings are ``S``, numbers ``N``; mappings arrive here already as JSON text. An attribute whose
value is None is left out of the item, and reads back as None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..errors import StateError
from .base import (
    ApplyRecord,
    BuildRecord,
    Hold,
    JournalEntry,
    LockInfo,
    ReleaseRecord,
    RolloutRecord,
    SavedGateProgress,
)
from .records import DAMAGED, from_json, optional_text, steps_from_json, text, to_json

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


def lock(fleet: str, item: Item) -> LockInfo | None:
    """The lock an item holds; None for a freed lock (its item keeps the epoch counter)."""
    if "owner" not in item:
        return None
    return LockInfo(
        fleet,
        string(item, "owner"),
        number(item, "acquired_at"),
        number(item, "lease_until"),
        epoch(item),
    )


def epoch(item: Item | None) -> int:
    """The epoch counter of a lock item (0: none yet, or a table from before fencing)."""
    return integer(item, "epoch") if item is not None and "epoch" in item else 0


def rollout(item: Item, where: str) -> RolloutRecord:
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
        steps=steps_from_json(opt_str(item, "steps"), f"{where}, attribute steps"),
        data=from_json(opt_str(item, "data"), {}, f"{where}, attribute data"),
    )


def release(item: Item, where: str) -> ReleaseRecord:
    return ReleaseRecord(
        fleet=string(item, "fleet"),
        release=string(item, "release"),
        seq=integer(item, "seq"),
        artifact=from_json(opt_str(item, "artifact"), {}, f"{where}, attribute artifact"),
        launch_config=from_json(
            opt_str(item, "launch_config"), {}, f"{where}, attribute launch_config"
        ),
        created_at=number(item, "created_at"),
        rollout=opt_str(item, "rollout"),
    )


def hold(item: Item, where: str) -> Hold:
    return Hold(
        fleet=string(item, "fleet"),
        kind=string(item, "kind"),
        release=string(item, "release"),
        at=number(item, "at"),
        rollout=opt_str(item, "rollout"),
        reason=opt_str(item, "reason"),
        data=from_json(opt_str(item, "data"), {}, f"{where}, attribute data"),
    )


def journal_entry(rollout_id: str, item: Item, where: str) -> JournalEntry:
    return JournalEntry(
        rollout=rollout_id,
        seq=integer(item, "seq"),
        step_index=integer(item, "step_index"),
        status=string(item, "status"),
        at=number(item, "at"),
        data=from_json(opt_str(item, "data"), {}, f"{where}, attribute data"),
        epoch=integer(item, "epoch") if "epoch" in item else None,
    )


def gate_progress(rollout_id: str, step_index: int, item: Item, where: str) -> SavedGateProgress:
    return SavedGateProgress(
        rollout=rollout_id,
        step_index=step_index,
        progress=from_json(opt_str(item, "progress"), {}, f"{where}, attribute progress"),
        saved_at=number(item, "saved_at"),
        epoch=integer(item, "epoch") if "epoch" in item else None,
    )


def build(item: Item, where: str) -> BuildRecord:
    return BuildRecord(
        image=string(item, "image"),
        digest=string(item, "digest"),
        attempt=integer(item, "attempt"),
        status=string(item, "status"),
        handle=from_json(opt_str(item, "handle"), {}, f"{where}, attribute handle"),
        started_at=number(item, "started_at"),
        updated_at=number(item, "updated_at"),
        result=from_json(opt_str(item, "result"), {}, f"{where}, attribute result"),
    )


def build_values(record: BuildRecord) -> dict[str, str | float | None]:
    return {
        "image": record.image,
        "digest": record.digest,
        "attempt": record.attempt,
        "status": record.status,
        "handle": to_json(dict(record.handle)),
        "started_at": record.started_at,
        "updated_at": record.updated_at,
        "result": to_json(dict(record.result)),
    }


T = TypeVar("T")


def decode(table: str, item: Item, build: Callable[[Item, str], T]) -> T:
    """``build(item, where)``, with a missing or mistyped attribute (a damaged item) turned
    into a StateError that names the table and the item's key."""
    key = {
        k: item.get(k, {}).get("S", "?") if isinstance(item.get(k), Mapping) else "?"
        for k in ("pk", "sk")
    }
    where = f"DynamoDB table {table!r}, item pk={key['pk']!r} sk={key['sk']!r}"
    try:
        return build(item, where)
    except StateError:
        raise
    except KeyError as exc:
        raise StateError(f"{where}: missing attribute {exc}; {DAMAGED}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise StateError(f"{where}: unreadable attribute ({exc}); {DAMAGED}") from exc


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


def apply_record(item: Item, where: str) -> ApplyRecord:
    """An apply record item (``A#{project}`` / ``apply#{id}``)."""
    return ApplyRecord(
        id=string(item, "id"),
        digest=string(item, "digest"),
        started_at=number(item, "started_at"),
        updated_at=number(item, "updated_at"),
        data=from_json(opt_str(item, "data"), {}, f"{where}, attribute data"),
    )
