"""Fleet locks in the DynamoDB state table: leases, epochs, and the fence other writes carry.

A lock is one item (``F#{project}#{fleet}`` / ``lock``) with ``owner``, ``acquired_at``,
``lease_until`` and ``epoch``. Releasing or force-unlocking removes the owner and the lease but
keeps the item and its epoch, so the epoch never goes back. A write made for a fleet whose lock
this store object holds goes into one ``TransactWriteItems`` with a ``ConditionCheck`` on the
lock item (``transact``): it is refused, and nothing written, once the epoch moved on.
"""

from __future__ import annotations

from typing import Any

from ..errors import LockHeld, StateError
from . import dynamodb_items as items
from . import fencing
from .base import LockInfo
from .dynamodb_table import Table
from .records import lock_lost

MAX_ATTEMPTS = 10  # conflicting writes before giving up on a lock
_NAMES = {"#pk": "pk", "#owner": "owner"}


class LockItems:
    """The fleet locks of one project in the state table, and this store object's fences."""

    def __init__(self, db: Table, table: str, project: str) -> None:
        self._db = db
        self.table = table
        self.project = project
        self.held = fencing.HeldLocks()

    def _pk(self, fleet: str) -> str:
        return f"F#{self.project}#{fleet}"

    # -- fencing -------------------------------------------------------------------------------

    def condition(self, fence: fencing.Fence) -> dict[str, Any]:
        """A transaction's ConditionCheck: the fleet's lock is still ``fence``'s."""
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": items.key(self._pk(fence.fleet), "lock"),
                "ConditionExpression": "#owner = :me AND epoch = :epoch",
                "ExpressionAttributeNames": {"#owner": "owner"},
                "ExpressionAttributeValues": {
                    ":me": items.attr(fence.owner),
                    ":epoch": items.attr(fence.epoch),
                },
            }
        }

    def transact(
        self, writes: list[dict[str, Any]], fence: fencing.Fence | None, what: str
    ) -> bool:
        """Write ``writes`` in one transaction, with ``fence`` checked in it: True when written,
        False when a write's own condition failed or it met another writer; LockLost (nothing
        written) when the fence fails."""
        if fence is not None:
            writes = [*writes, self.condition(fence)]
        reasons = self._db.transact(writes)
        if reasons is None:
            return True
        if fence is not None and (not reasons or reasons[-1] != "None"):
            current = self.get(fence.fleet)
            if not fence.admits(current):
                raise fencing.refused(fence, current, what)
        return False

    # -- locks -------------------------------------------------------------------------------

    def _item(self, fleet: str) -> dict[str, Any] | None:
        return self._db.get(self._pk(fleet), "lock")

    def _info(self, fleet: str, item: dict[str, Any] | None) -> LockInfo | None:
        if item is None:
            return None
        return items.decode(self.table, item, lambda i, _: items.lock(fleet, i))

    def get(self, fleet: str) -> LockInfo | None:
        return self._info(fleet, self._item(fleet))

    def acquire(self, fleet: str, owner: str, lease: float, now: float) -> LockInfo:
        for _ in range(MAX_ATTEMPTS):
            item = self._item(fleet)
            current = self._info(fleet, item)
            if current and current.owner != owner and current.lease_until >= now:
                raise LockHeld(fleet, current.owner, current.acquired_at, current.lease_until)
            if current and current.owner == owner:
                since, epoch = current.acquired_at, current.epoch
            else:
                since, epoch = now, items.epoch(item) + 1
            info = LockInfo(fleet, owner, since, now + lease, epoch)
            values: dict[str, str | float | None] = {
                "owner": owner,
                "acquired_at": since,
                "lease_until": info.lease_until,
                "epoch": epoch,
            }
            # Written only over the item as read (its epoch), so that two takers never get
            # one epoch, and only while the lock is free, expired or ours.
            if item is None:
                unchanged = "attribute_not_exists(#pk)"
            elif "epoch" in item:
                unchanged = "epoch = :seen"
            else:
                unchanged = "attribute_not_exists(epoch)"
            names = {"#owner": "owner", **({"#pk": "pk"} if item is None else {})}
            written = self._db.conditional(
                "put_item",
                Item={**items.key(self._pk(fleet), "lock"), **items.attrs(values)},
                ConditionExpression=(
                    f"({unchanged}) AND "
                    "(attribute_not_exists(#owner) OR lease_until < :now OR #owner = :me)"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    ":now": items.attr(now),
                    ":me": items.attr(owner),
                    **(
                        {":seen": items.attr(items.epoch(item))}
                        if unchanged.startswith("epoch")
                        else {}
                    ),
                },
            )
            if written is not None:
                self.held.hold(info)
                return info
            # another owner wrote the lock between our read and our write: look again
        raise StateError(
            f"DynamoDB table {self.table!r}: could not take the lock of fleet {fleet!r}: "
            f"{MAX_ATTEMPTS} attempts met concurrent writers"
        )

    def _ours(self, fleet: str, owner: str) -> tuple[str, dict[str, str], dict[str, Any]]:
        """Condition, names and values: the lock is ``owner``'s (and of the epoch this store
        took, when it took it)."""
        condition = "#owner = :me"
        values: dict[str, Any] = {":me": items.attr(owner)}
        fence = self.held.get(fleet)
        if fence is not None and fence.owner == owner:
            condition += " AND epoch = :epoch"
            values[":epoch"] = items.attr(fence.epoch)
        return condition, {"#owner": "owner"}, values

    def renew(self, fleet: str, owner: str, lease: float, now: float) -> LockInfo:
        condition, names, values = self._ours(fleet, owner)
        response = self._db.conditional(
            "update_item",
            Key=items.key(self._pk(fleet), "lock"),
            UpdateExpression="SET lease_until = :until",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={**values, ":until": items.attr(now + lease)},
            ReturnValues="ALL_NEW",
        )
        if response is None:
            current = self.get(fleet)
            fence = self.held.get(fleet)
            if fence is not None and fence.owner == owner:
                raise fencing.refused(fence, current, "renew the lease")
            raise lock_lost(fleet, owner, current)
        info = self._info(fleet, response["Attributes"])
        assert info is not None  # the condition saw our owner
        return info

    def release(self, fleet: str, owner: str) -> bool:
        condition, names, values = self._ours(fleet, owner)
        response = self._db.conditional(
            "update_item",
            Key=items.key(self._pk(fleet), "lock"),
            UpdateExpression="REMOVE #owner, acquired_at, lease_until",  # the epoch stays
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        if response is None:
            return False
        self.held.drop(fleet, owner)
        return True

    def force_unlock(self, fleet: str) -> LockInfo | None:
        response = self._db.conditional(
            "update_item",
            Key=items.key(self._pk(fleet), "lock"),
            UpdateExpression=(
                "REMOVE #owner, acquired_at, lease_until "
                "SET epoch = if_not_exists(epoch, :zero) + :one"
            ),
            ConditionExpression="attribute_exists(#pk)",
            ExpressionAttributeNames=_NAMES,
            ExpressionAttributeValues={":zero": items.attr(0), ":one": items.attr(1)},
            ReturnValues="ALL_OLD",
        )
        if response is None:  # never locked
            return None
        return self._info(fleet, response.get("Attributes"))
