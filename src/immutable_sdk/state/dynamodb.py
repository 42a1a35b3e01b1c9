"""The team state store: one DynamoDB table shared by everyone who deploys a project.

Single-table design with string keys ``pk`` (partition) and ``sk`` (sort). A project name never
contains ``#``, so every key is unambiguous::

    pk                          sk                                  item
    META                        schema                              schema_version of the layout
    P#{project}                 fleet#{fleet}                       a fleet that has had a rollout
    F#{project}#{fleet}         lock                                owner, acquired_at, lease_until
    F#{project}#{fleet}         rollout#{started:020.6f}#{id}       a rollout record
    F#{project}#{fleet}         release#{seq:08d}                   a release record, by sequence
    F#{project}#{fleet}         release-id#{release}                the same record, by release id
    R#{project}#{rollout}       rollout                             where the rollout record lives
    R#{project}#{rollout}       journal#{seq:08d}                   a journal entry
    R#{project}#{rollout}       signal#{at:020.6f}#{uuid}           an operator signal not yet taken

A fleet's lock, rollouts (sorted by start time) and releases (by sequence) share a partition and
are read with strongly consistent queries; a rollout's journal and signals share another. Mappings
are stored as JSON strings, so nothing goes through DynamoDB's number and empty-value rules.

Concurrency: a lock is taken by a conditional put (``attribute_not_exists(pk) OR lease_until <
:now OR #owner = :me``), so a write that botocore retried after a lost response meets its own
lock and succeeds. Sequence numbers are claimed by conditional puts; on a conflict the store reads
again and retries, a bounded number of times. Each write carries a random token, so a retried
write that finds its sequence taken can tell whether it took it itself. A release is written as
two items in one transaction (by sequence and by id): recording a release id twice returns the
first record. Taking signals deletes each one with ``ReturnValues=ALL_OLD``: each is taken once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from ..errors import LockHeld, StateError
from . import dynamodb_items as items
from .base import SCHEMA_VERSION, JournalEntry, LockInfo, ReleaseRecord, RolloutRecord
from .dynamodb_table import Table, check_key_schema, describe_table
from .records import from_json, lock_lost, rollout_changes, text, to_json

MAX_ATTEMPTS = 10  # conflicting writes before giving up on a sequence number or a lock
_META_KEY = {"pk": {"S": "META"}, "sk": {"S": "schema"}}
_NAMES = {"#pk": "pk", "#owner": "owner"}


class DynamoDbStateStore:
    """StateStore on a DynamoDB table (made by ``create_table``), through a client passed in."""

    def __init__(self, client: Any, table: str, project: str) -> None:
        if not project or "#" in project:
            raise StateError(f"project name {project!r} cannot key DynamoDB state (empty or '#')")
        self._db = Table(client, table)
        self.table = table
        self.project = project
        check_key_schema(describe_table(client, table), table)
        self._check_schema_version()

    def _check_schema_version(self) -> None:
        item = self._db.get("META", "schema")
        if item is None:  # a table made elsewhere (Terraform...): stamp it with our layout
            self._db.conditional(
                "put_item",
                Item={**_META_KEY, "schema_version": items.attr(SCHEMA_VERSION)},
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": "pk"},
            )
        elif items.integer(item, "schema_version") > SCHEMA_VERSION:
            raise StateError(
                f"DynamoDB table {self.table!r} holds state of schema version "
                f"{item['schema_version']['N']}, but this immutable-sdk understands versions up "
                f"to {SCHEMA_VERSION}; upgrade immutable-sdk (nothing was written)"
            )

    def _fleet_pk(self, fleet: str) -> str:
        return f"F#{self.project}#{fleet}"

    def _rollout_pk(self, rollout: str) -> str:
        return f"R#{self.project}#{rollout}"

    def _gave_up(self, what: str) -> StateError:
        return StateError(
            f"DynamoDB table {self.table!r}: could not {what}: {MAX_ATTEMPTS} attempts met "
            "concurrent writers"
        )

    # -- locks -------------------------------------------------------------------------------

    def get_lock(self, fleet: str) -> LockInfo | None:
        item = self._db.get(self._fleet_pk(fleet), "lock")
        return None if item is None else items.lock(fleet, item)

    def acquire_lock(self, fleet: str, owner: str, lease: float, now: float) -> LockInfo:
        for _ in range(MAX_ATTEMPTS):
            current = self.get_lock(fleet)
            if current and current.owner != owner and current.lease_until >= now:
                raise LockHeld(fleet, current.owner, current.acquired_at, current.lease_until)
            since = current.acquired_at if current and current.owner == owner else now
            info = LockInfo(fleet, owner, since, now + lease)
            values: dict[str, str | float | None] = {
                "owner": owner,
                "acquired_at": since,
                "lease_until": info.lease_until,
            }
            written = self._db.conditional(
                "put_item",
                Item={**items.key(self._fleet_pk(fleet), "lock"), **items.attrs(values)},
                ConditionExpression=(
                    "attribute_not_exists(#pk) OR lease_until < :now OR #owner = :me"
                ),
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={":now": items.attr(now), ":me": items.attr(owner)},
            )
            if written is not None:
                return info
            # another owner wrote the lock between our read and our write: look again
        raise self._gave_up(f"take the lock of fleet {fleet!r}")

    def renew_lock(self, fleet: str, owner: str, lease: float, now: float) -> LockInfo:
        response = self._db.conditional(
            "update_item",
            Key=items.key(self._fleet_pk(fleet), "lock"),
            UpdateExpression="SET lease_until = :until",
            ConditionExpression="#owner = :me",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":until": items.attr(now + lease), ":me": items.attr(owner)},
            ReturnValues="ALL_NEW",
        )
        if response is None:
            raise lock_lost(fleet, owner, self.get_lock(fleet))
        return items.lock(fleet, response["Attributes"])

    def release_lock(self, fleet: str, owner: str) -> bool:
        response = self._db.conditional(
            "delete_item",
            Key=items.key(self._fleet_pk(fleet), "lock"),
            ConditionExpression="#owner = :me",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":me": items.attr(owner)},
        )
        return response is not None

    def force_unlock(self, fleet: str) -> LockInfo | None:
        response = self._db.call(
            "delete_item", Key=items.key(self._fleet_pk(fleet), "lock"), ReturnValues="ALL_OLD"
        )
        old = response.get("Attributes")
        return items.lock(fleet, old) if old else None

    # -- rollouts and journal ------------------------------------------------------------------

    def start_rollout(self, record: RolloutRecord) -> None:
        rollout_pk = self._rollout_pk(record.id)
        record_sk = f"rollout#{record.started_at:020.6f}#{record.id}"
        values = items.rollout_values(record)
        token = uuid.uuid4().hex
        pointer = {"fleet": record.fleet, "record_sk": record_sk, "token": token}
        register_fleet = {
            "Update": {
                "TableName": self.table,
                "Key": items.key(f"P#{self.project}", f"fleet#{record.fleet}"),
                "UpdateExpression": "SET #fleet = :fleet",
                "ExpressionAttributeNames": {"#fleet": "fleet"},
                "ExpressionAttributeValues": {":fleet": items.attr(record.fleet)},
            }
        }
        writes = [
            self._db.new({**items.key(rollout_pk, "rollout"), **items.attrs(pointer)}),
            self._db.new(
                {**items.key(self._fleet_pk(record.fleet), record_sk), **items.attrs(values)}
            ),
            register_fleet,
        ]
        for _ in range(MAX_ATTEMPTS):
            if self._db.conditional("transact_write_items", TransactItems=writes) is not None:
                return
            existing = self._db.get(rollout_pk, "rollout")
            if existing is not None:
                if items.opt_str(existing, "token") == token:
                    return  # our own write, retried by botocore after a lost response
                raise StateError(
                    f"rollout {record.id!r} already exists in project {self.project!r}"
                )
        raise self._gave_up(f"start rollout {record.id!r}")

    def _record_key(self, rollout: str) -> dict[str, dict[str, str]] | None:
        pointer = self._db.get(self._rollout_pk(rollout), "rollout")
        if pointer is None:
            return None
        return items.key(
            self._fleet_pk(items.string(pointer, "fleet")), items.string(pointer, "record_sk")
        )

    def _no_rollout(self, rollout: str) -> StateError:
        return StateError(f"no rollout {rollout!r} in project {self.project!r}")

    def update_rollout(self, rollout: str, **changes: Any) -> RolloutRecord:
        values = rollout_changes(rollout, changes)
        key = self._record_key(rollout)
        if key is None:
            raise self._no_rollout(rollout)
        names: dict[str, str] = {"#pk": "pk"}
        attrs: dict[str, dict[str, str]] = {}
        sets: list[str] = []
        removes: list[str] = []
        for i, (name, value) in enumerate(values.items()):
            names[f"#f{i}"] = name
            if value is None:
                removes.append(f"#f{i}")
            else:
                sets.append(f"#f{i} = :v{i}")
                attrs[f":v{i}"] = items.attr(value)
        if not sets and not removes:
            item = self._db.call("get_item", Key=key, ConsistentRead=True).get("Item")
            if item is None:
                raise self._no_rollout(rollout)
            return items.rollout(item)
        update = " ".join(
            part
            for part in (
                "SET " + ", ".join(sets) if sets else "",
                "REMOVE " + ", ".join(removes) if removes else "",
            )
            if part
        )
        kwargs: dict[str, Any] = {"ExpressionAttributeValues": attrs} if attrs else {}
        response = self._db.conditional(
            "update_item",
            Key=key,
            UpdateExpression=update,
            ConditionExpression="attribute_exists(#pk)",
            ExpressionAttributeNames=names,
            ReturnValues="ALL_NEW",
            **kwargs,
        )
        if response is None:
            raise self._no_rollout(rollout)
        return items.rollout(response["Attributes"])

    def get_rollout(self, rollout: str) -> RolloutRecord | None:
        key = self._record_key(rollout)
        if key is None:
            return None
        item = self._db.call("get_item", Key=key, ConsistentRead=True).get("Item")
        return None if item is None else items.rollout(item)

    def rollouts(self, fleet: str | None = None, limit: int = 50) -> list[RolloutRecord]:
        if limit <= 0:
            return []
        if fleet is not None:
            fleets = [fleet]
        else:
            fleets = [
                items.string(i, "fleet") for i in self._db.query(f"P#{self.project}", "fleet#")
            ]
        found: list[RolloutRecord] = []
        for name in fleets:
            pages = self._db.query(self._fleet_pk(name), "rollout#", newest_first=True, limit=limit)
            found.extend(items.rollout(item) for item in pages)
        found.sort(key=lambda r: (r.started_at, r.id), reverse=True)
        return found[:limit]

    def fleets(self) -> list[str]:
        found = self._db.query(f"P#{self.project}", "fleet#")
        return sorted({items.string(i, "fleet") for i in found})

    def unfinished_rollout(self, fleet: str) -> RolloutRecord | None:
        pages = self._db.query(
            self._fleet_pk(fleet),
            "rollout#",
            newest_first=True,
            limit=1,
            where="attribute_not_exists(#outcome)",
            names={"#outcome": "outcome"},
        )
        item = next(pages, None)
        return None if item is None else items.rollout(item)

    def append_journal(
        self, rollout: str, step_index: int, status: str, at: float, data: Mapping[str, Any]
    ) -> JournalEntry:
        rollout_pk = self._rollout_pk(rollout)
        encoded = to_json(dict(data))
        token = uuid.uuid4().hex
        for _ in range(MAX_ATTEMPTS):
            last = next(self._db.query(rollout_pk, "journal#", newest_first=True, limit=1), None)
            if last is None and self._db.get(rollout_pk, "rollout") is None:
                raise self._no_rollout(rollout)
            seq = 1 if last is None else items.integer(last, "seq") + 1
            sk = f"journal#{seq:08d}"
            values: dict[str, str | float | None] = {
                "seq": seq,
                "step_index": step_index,
                "status": text(status),
                "at": at,
                "data": encoded,
                "token": token,
            }
            entry = JournalEntry(rollout, seq, step_index, text(status), at, from_json(encoded, {}))
            if self._db.conditional(
                "put_item",
                Item={**items.key(rollout_pk, sk), **items.attrs(values)},
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": "pk"},
            ):
                return entry
            taken = self._db.get(rollout_pk, sk)
            if taken is not None and items.opt_str(taken, "token") == token:
                return entry  # our own write, retried by botocore after a lost response
        raise self._gave_up(f"append to the journal of rollout {rollout!r}")

    def journal(self, rollout: str) -> list[JournalEntry]:
        return [
            items.journal_entry(rollout, i)
            for i in self._db.query(self._rollout_pk(rollout), "journal#")
        ]

    # -- releases ------------------------------------------------------------------------------

    def record_release(
        self,
        fleet: str,
        release: str,
        artifact: Mapping[str, Any],
        launch_config: Mapping[str, Any],
        created_at: float,
        rollout: str | None = None,
    ) -> ReleaseRecord:
        fleet_pk = self._fleet_pk(fleet)
        for _ in range(MAX_ATTEMPTS):
            existing = self.get_release(fleet, release)
            if existing is not None:
                return existing
            last = next(self._db.query(fleet_pk, "release#", newest_first=True, limit=1), None)
            seq = 1 if last is None else items.integer(last, "seq") + 1
            values = items.attrs(
                {
                    "fleet": fleet,
                    "release": release,
                    "seq": seq,
                    "artifact": to_json(dict(artifact)),
                    "launch_config": to_json(dict(launch_config)),
                    "created_at": created_at,
                    "rollout": rollout,
                }
            )
            writes = [
                self._db.new({**items.key(fleet_pk, f"release#{seq:08d}"), **values}),
                self._db.new({**items.key(fleet_pk, f"release-id#{release}"), **values}),
            ]
            if self._db.conditional("transact_write_items", TransactItems=writes) is not None:
                return items.release(values)
            # the sequence number or the release id was taken meanwhile: look again
        raise self._gave_up(f"record release {release!r} of fleet {fleet!r}")

    def releases(self, fleet: str) -> list[ReleaseRecord]:
        pages = self._db.query(self._fleet_pk(fleet), "release#", newest_first=True)
        return [items.release(item) for item in pages]

    def get_release(self, fleet: str, release: str) -> ReleaseRecord | None:
        item = self._db.get(self._fleet_pk(fleet), f"release-id#{release}")
        return None if item is None else items.release(item)

    # -- operator signals ----------------------------------------------------------------------

    def send_signal(self, rollout: str, name: str, at: float) -> None:
        rollout_pk = self._rollout_pk(rollout)
        if self._db.get(rollout_pk, "rollout") is None:
            raise self._no_rollout(rollout)
        sk = f"signal#{at:020.6f}#{uuid.uuid4().hex}"
        self._db.call(
            "put_item", Item={**items.key(rollout_pk, sk), **items.attrs({"name": text(name)})}
        )

    def take_signals(self, rollout: str) -> list[str]:
        taken: list[str] = []
        for item in list(self._db.query(self._rollout_pk(rollout), "signal#")):
            response = self._db.call(
                "delete_item",
                Key={"pk": item["pk"], "sk": item["sk"]},
                ReturnValues="ALL_OLD",
            )
            if response.get("Attributes"):  # absent: another process took it first
                taken.append(items.string(item, "name"))
        return taken

    def close(self) -> None:
        """Nothing to release: the client belongs to whoever passed it in."""
