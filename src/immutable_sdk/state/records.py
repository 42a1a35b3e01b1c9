"""What both state backends share: JSON encoding of mappings, rollout updates, lock messages."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Set
from enum import Enum
from pathlib import PurePath
from typing import Any

from ..errors import LockLost, StateError
from ..redaction import redact_text
from .base import HOLD_KINDS, Hold, LockInfo

ERROR_KEYS = frozenset({"error", "reason"})
DAMAGED = "the state store is damaged: repair or delete that entry (see docs/operations.md)"

# Fields of a RolloutRecord that update_rollout may change; the rest define the rollout.
UPDATABLE_ROLLOUT_FIELDS = ("phase", "finished_at", "outcome", "error", "owner", "steps", "data")


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (Set, tuple)):
        return sorted(value) if isinstance(value, Set) else list(value)
    raise TypeError(f"cannot store a value of type {type(value).__name__} in state: {value!r}")


def to_json(value: Any) -> str:
    """Compact, key-sorted JSON; read-only mappings, enums and paths are stored as plain values.

    A top-level ``error`` or ``reason`` text (journal entries) is stored redacted.
    """
    if isinstance(value, dict) and not ERROR_KEYS.isdisjoint(value):
        value = {
            k: redact_text(v) if k in ERROR_KEYS and isinstance(v, str) else v
            for k, v in value.items()
        }
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), default=_json_default, allow_nan=False
    )


def from_json(text: str | None, empty: Any, where: str) -> Any:
    """Decode a stored JSON column of ``empty``'s type ({} or []); StateError naming ``where``
    (the table, row and column) when it is broken or of another type."""
    if not text:
        return empty
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise StateError(f"{where}: broken JSON ({exc}); {DAMAGED}") from exc
    if not isinstance(value, type(empty)):
        expected = "an object" if isinstance(empty, dict) else "a list"
        raise StateError(
            f"{where}: expected {expected} in JSON, found {type(value).__name__}; {DAMAGED}"
        )
    return value


def steps_from_json(text: str | None, where: str) -> tuple[dict[str, Any], ...]:
    """A rollout's planned steps, each checked to rebuild as a Step (known kind, its fields)."""
    from ..lifecycle import step_from_dict

    steps: list[Any] = from_json(text, [], where)
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            raise StateError(f"{where}: step {index} is not an object; {DAMAGED}")
        try:
            step_from_dict(step)
        except StateError as exc:
            raise StateError(f"{where}: step {index}: {exc}; {DAMAGED}") from exc
    return tuple(steps)


def text(value: Any) -> str:
    """A string column's value: enums (lifecycle.Phase) by their value."""
    return str(value.value) if isinstance(value, Enum) else str(value)


def optional_text(value: Any) -> str | None:
    return None if value is None else text(value)


def rollout_changes(rollout: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validated, normalized changes for update_rollout: steps and data as JSON text.

    Unknown fields are a programming error (TypeError), as an unknown keyword argument would be.
    """
    unknown = sorted(set(changes) - set(UPDATABLE_ROLLOUT_FIELDS))
    if unknown:
        raise TypeError(
            f"update_rollout({rollout!r}): cannot change {', '.join(unknown)}; "
            f"changeable fields: {', '.join(UPDATABLE_ROLLOUT_FIELDS)}"
        )
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "phase":
            if value is None:
                raise TypeError(f"update_rollout({rollout!r}): phase cannot be None")
            out[name] = text(value)
        elif name == "steps":
            out[name] = to_json([dict(s) for s in value or ()])
        elif name == "data":
            out[name] = to_json(dict(value or {}))
        elif name == "finished_at":
            out[name] = None if value is None else float(value)
        elif name == "error":
            out[name] = None if value is None else redact_text(text(value))
        else:
            out[name] = optional_text(value)
    return out


def iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc).isoformat(timespec="seconds")


def lock_lost(fleet: str, owner: str, current: LockInfo | None) -> LockLost:
    """The LockLost for ``owner`` renewing a lock that ``current`` describes (None: no lock)."""
    if current is None:
        now_held = "nobody holds it now (released or force-unlocked)"
    else:
        now_held = f"{current.owner} holds it since {iso(current.acquired_at)}"
    return LockLost(f"fleet {fleet!r}: the lock is no longer held by {owner}; {now_held}")


def sorted_holds(holds: list[Hold]) -> list[Hold]:
    """A fleet's holds as ``StateStore.holds`` lists them: the pin first, then by time."""
    return sorted(holds, key=lambda h: (h.kind != "pin", h.at, h.release))


def hold_values(hold: Hold) -> dict[str, Any]:
    """A hold's stored fields (data as JSON text, the reason redacted)."""
    if hold.kind not in HOLD_KINDS:
        raise StateError(f"unknown hold kind {hold.kind!r} (known: {', '.join(HOLD_KINDS)})")
    return {
        "slot": hold.slot,
        "kind": hold.kind,
        "release": hold.release,
        "at": float(hold.at),
        "rollout": hold.rollout,
        "reason": None if hold.reason is None else redact_text(hold.reason),
        "data": to_json(dict(hold.data)),
    }
