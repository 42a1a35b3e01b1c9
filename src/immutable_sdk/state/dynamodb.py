"""The team state store: one DynamoDB table shared by everyone who deploys a project.

Single-table design with string keys ``pk`` (partition) and ``sk`` (sort). A project name never
contains ``#``, so every key is unambiguous::

    pk                          sk                                  item
    META                        schema                              schema_version of the layout
    P#{project}                 fleet#{fleet}                       a fleet that has had a rollout
    F#{project}#{fleet}         lock                                owner, acquired_at, lease_until,
                                                                    epoch (kept when freed)
    F#{project}#{fleet}         rollout#{started:020.6f}#{id}       a rollout record
    F#{project}#{fleet}         release#{seq:08d}                   a release record, by sequence
    F#{project}#{fleet}         release-id#{release}                the same record, by release id
    F#{project}#{fleet}         hold#{slot}                         a hold: pin, quarantine#{id}
    R#{project}#{rollout}       rollout                             where the rollout record lives
    R#{project}#{rollout}       journal#{seq:08d}                   a journal entry
    R#{project}#{rollout}       signal#{at:020.6f}#{uuid}           an operator signal not yet taken
    A#{project}                 apply#{id}                          an apply record (a plan's ticks)
    R#{project}#{rollout}       transition#{index}#{status}         seq of a journaled transition
    R#{project}#{rollout}       gate#{index}                        a suspended gate's progress
    I#{project}#{image}         build#{digest}                      an image build (Image Builder)

A fleet's lock, rollouts (sorted by start time) and releases (by sequence) share a partition and
are read with strongly consistent queries; a rollout's journal and signals share another. Mappings
are stored as JSON strings, so nothing goes through DynamoDB's number and empty-value rules.

Concurrency: a lock is taken by a conditional put over the lock item as read (its epoch), only
while it is free, expired or ours, so a write that botocore retried after a lost response meets
its own lock and succeeds (``dynamodb_locks``). Every write for a fleet whose lock this store
object holds carries a ``ConditionCheck`` on the lock's owner and epoch in its transaction
(fencing). Sequence numbers are claimed by conditional puts; on a conflict the store reads
again and retries, a bounded number of times. Each write carries a random token, so a retried
write that finds its sequence taken can tell whether it took it itself. A release is written as
two items in one transaction (by sequence and by id): recording a release id twice returns the
first record. A journal transition (any status but ``note``) is written together with its
``transition#`` marker, which must not exist: the same transition appended twice, by any
processes, is written once. Taking signals deletes each one with ``ReturnValues=ALL_OLD``:
each is taken once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..errors import StateError
from . import dynamodb_items as items
from . import fencing
from .base import (
    BUILD_RUNNING,
    REPEATABLE_STATUSES,
    SCHEMA_VERSION,
    ApplyRecord,
    BuildRecord,
    Hold,
    JournalEntry,
    LockInfo,
    ReleaseRecord,
    RolloutRecord,
    SavedGateProgress,
)
from .dynamodb_locks import LockItems
from .dynamodb_table import Table, check_key_schema, describe_table
from .records import from_json, hold_values, rollout_changes, sorted_holds, text, to_json

MAX_ATTEMPTS = 10  # conflicting writes before giving up on a sequence number
_META_KEY = {"pk": {"S": "META"}, "sk": {"S": "schema"}}


class DynamoDbStateStore:
    """StateStore on a DynamoDB table (made by ``create_table``), through a client passed in."""

    def __init__(self, client: Any, table: str, project: str) -> None:
        if not project or "#" in project:
            raise StateError(f"project name {project!r} cannot key DynamoDB state (empty or '#')")
        self._db = Table(client, table)
        self.table = table
        self.project = project
        self._locks = LockItems(self._db, table, project)
        self._held = self._locks.held
        self._rollout_fleets: dict[str, str] = {}  # rollout id -> fleet key (never changes)
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
            return
        version = items.decode(self.table, item, lambda i, _: items.integer(i, "schema_version"))
        if version > SCHEMA_VERSION:
            raise StateError(
                f"DynamoDB table {self.table!r} holds state of schema version "
                f"{version}, but this immutable-sdk understands versions up "
                f"to {SCHEMA_VERSION}; upgrade immutable-sdk (nothing was written)"
            )
        if version < SCHEMA_VERSION:
            # 1 -> 2 (fencing) rewrites no item: a lock item without an epoch reads as epoch 0.
            # 2 -> 3 (holds) adds items of a new sort key prefix and rewrites none.
            # 3 -> 4 adds item kinds (transition markers, gate progress, builds, apply
            # records), rewrites none.
            # The stamp makes older immutable-sdk versions, which do not fence, refuse the table.
            self._db.conditional(
                "update_item",
                Key=_META_KEY,
                UpdateExpression="SET schema_version = :new",
                ConditionExpression="schema_version < :new",
                ExpressionAttributeValues={":new": items.attr(SCHEMA_VERSION)},
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

    # -- fencing and locks (dynamodb_locks) ---------------------------------------------------

    def _transact(
        self, writes: list[dict[str, Any]], fence: fencing.Fence | None, what: str
    ) -> bool:
        return self._locks.transact(writes, fence, what)

    def _fleet_of(self, rollout: str) -> str | None:
        """The fleet key of a rollout (cached: it never changes); None when there is none."""
        fleet = self._rollout_fleets.get(rollout)
        if fleet is None:
            pointer = self._db.get(self._rollout_pk(rollout), "rollout")
            if pointer is None:
                return None
            fleet = items.decode(self.table, pointer, lambda i, _: items.string(i, "fleet"))
            self._rollout_fleets[rollout] = fleet
        return fleet

    def get_lock(self, fleet: str) -> LockInfo | None:
        return self._locks.get(fleet)

    def acquire_lock(self, fleet: str, owner: str, lease: float, now: float) -> LockInfo:
        return self._locks.acquire(fleet, owner, lease, now)

    def renew_lock(self, fleet: str, owner: str, lease: float, now: float) -> LockInfo:
        return self._locks.renew(fleet, owner, lease, now)

    def release_lock(self, fleet: str, owner: str) -> bool:
        return self._locks.release(fleet, owner)

    def force_unlock(self, fleet: str) -> LockInfo | None:
        return self._locks.force_unlock(fleet)

    # -- rollouts and journal ------------------------------------------------------------------

    def _rollout(self, item: dict[str, Any]) -> RolloutRecord:
        return items.decode(self.table, item, items.rollout)

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
        fence = self._held.get(record.fleet)
        for _ in range(MAX_ATTEMPTS):
            if self._transact(writes, fence, f"start rollout {record.id!r}"):
                self._rollout_fleets[record.id] = record.fleet
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
        fleet, record_sk = items.decode(
            self.table,
            pointer,
            lambda i, _: (items.string(i, "fleet"), items.string(i, "record_sk")),
        )
        self._rollout_fleets[rollout] = fleet
        return items.key(self._fleet_pk(fleet), record_sk)

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
            return self._rollout(item)
        update = " ".join(
            part
            for part in (
                "SET " + ", ".join(sets) if sets else "",
                "REMOVE " + ", ".join(removes) if removes else "",
            )
            if part
        )
        kwargs: dict[str, Any] = {"ExpressionAttributeValues": attrs} if attrs else {}
        fence = self._held.get(self._rollout_fleets[rollout])
        if fence is not None:
            # A transaction has no ReturnValues: read the record back after it.
            change = {
                "Update": {
                    "TableName": self.table,
                    "Key": key,
                    "UpdateExpression": update,
                    "ConditionExpression": "attribute_exists(#pk)",
                    "ExpressionAttributeNames": names,
                    **kwargs,
                }
            }
            if not self._transact([change], fence, f"update rollout {rollout!r}"):
                raise self._no_rollout(rollout)
            item = self._db.call("get_item", Key=key, ConsistentRead=True).get("Item")
            if item is None:
                raise self._no_rollout(rollout)
            return self._rollout(item)
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
        return self._rollout(response["Attributes"])

    def get_rollout(self, rollout: str) -> RolloutRecord | None:
        key = self._record_key(rollout)
        if key is None:
            return None
        item = self._db.call("get_item", Key=key, ConsistentRead=True).get("Item")
        return None if item is None else self._rollout(item)

    def rollouts(self, fleet: str | None = None, limit: int = 50) -> list[RolloutRecord]:
        if limit <= 0:
            return []
        fleets = [fleet] if fleet is not None else self.fleets()
        found: list[RolloutRecord] = []
        for name in fleets:
            pages = self._db.query(self._fleet_pk(name), "rollout#", newest_first=True, limit=limit)
            found.extend(self._rollout(item) for item in pages)
        found.sort(key=lambda r: (r.started_at, r.id), reverse=True)
        return found[:limit]

    def fleets(self) -> list[str]:
        found = self._db.query(f"P#{self.project}", "fleet#")
        return sorted(
            {items.decode(self.table, i, lambda i, _: items.string(i, "fleet")) for i in found}
        )

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
        return None if item is None else self._rollout(item)

    def append_journal(
        self, rollout: str, step_index: int, status: str, at: float, data: Mapping[str, Any]
    ) -> JournalEntry:
        rollout_pk = self._rollout_pk(rollout)
        encoded = to_json(dict(data))
        token = uuid.uuid4().hex
        fence = None
        if self._held:  # writing for a fleet this store holds the lock of: fence it
            fleet = self._fleet_of(rollout)
            if fleet is None:
                raise self._no_rollout(rollout)
            fence = self._held.get(fleet)
        what = f"append to the journal of rollout {rollout!r}"
        for _ in range(MAX_ATTEMPTS):
            last = next(self._db.query(rollout_pk, "journal#", newest_first=True, limit=1), None)
            if last is None and self._db.get(rollout_pk, "rollout") is None:
                raise self._no_rollout(rollout)
            seq = 1 if last is None else self._seq(last)
            sk = f"journal#{seq:08d}"
            values: dict[str, str | float | None] = {
                "seq": seq,
                "step_index": step_index,
                "status": text(status),
                "at": at,
                "data": encoded,
                "token": token,
                "epoch": None if fence is None else fence.epoch,
            }
            entry = JournalEntry(
                rollout,
                seq,
                step_index,
                text(status),
                at,
                from_json(encoded, {}, "journal entry"),
                None if fence is None else fence.epoch,
            )
            put = self._db.new({**items.key(rollout_pk, sk), **items.attrs(values)})
            marker_sk = f"transition#{step_index}#{text(status)}"
            transition = text(status) not in REPEATABLE_STATUSES
            writes = [put]
            if transition:
                marker: dict[str, str | float | None] = {"seq": seq, "token": token}
                writes.append(
                    self._db.new({**items.key(rollout_pk, marker_sk), **items.attrs(marker)})
                )
            if fence is not None or transition:
                if self._transact(writes, fence, what):
                    return entry
            elif self._db.conditional("put_item", **put["Put"]) is not None:
                return entry
            taken = self._db.get(rollout_pk, sk)
            if taken is not None and items.opt_str(taken, "token") == token:
                return entry  # our own write, retried by botocore after a lost response
            if transition:
                first = self._first_transition(rollout, marker_sk)
                if first is not None:
                    return first
        raise self._gave_up(f"append to the journal of rollout {rollout!r}")

    def _first_transition(self, rollout: str, marker_sk: str) -> JournalEntry | None:
        """The entry a ``transition#`` marker points to (``appended`` False), if any."""
        rollout_pk = self._rollout_pk(rollout)
        marker = self._db.get(rollout_pk, marker_sk)
        if marker is None:
            return None
        seq = items.decode(self.table, marker, lambda i, _: items.integer(i, "seq"))
        item = self._db.get(rollout_pk, f"journal#{seq:08d}")
        if item is None:
            return None
        entry = items.decode(self.table, item, lambda i, w: items.journal_entry(rollout, i, w))
        return replace(entry, appended=False)

    # -- gate progress -------------------------------------------------------------------------

    def save_gate_progress(
        self, rollout: str, step_index: int, progress: Mapping[str, Any], at: float
    ) -> SavedGateProgress:
        fleet = self._fleet_of(rollout)
        if fleet is None:
            raise self._no_rollout(rollout)
        fence = self._held.get(fleet)
        encoded = to_json(dict(progress))
        epoch = None if fence is None else fence.epoch
        values: dict[str, str | float | None] = {
            "progress": encoded,
            "saved_at": at,
            "epoch": epoch,
        }
        item = {**items.key(self._rollout_pk(rollout), f"gate#{step_index}"), **items.attrs(values)}
        what = f"save the gate progress of rollout {rollout!r}"
        if fence is not None:
            put = {"Put": {"TableName": self.table, "Item": item}}
            if not self._transact([put], fence, what):
                raise self._gave_up(what)
        else:
            self._db.call("put_item", Item=item)
        return SavedGateProgress(
            rollout, step_index, from_json(encoded, {}, "gate progress"), at, epoch
        )

    def gate_progress(self, rollout: str, step_index: int) -> SavedGateProgress | None:
        item = self._db.get(self._rollout_pk(rollout), f"gate#{step_index}")
        if item is None:
            return None
        return items.decode(
            self.table, item, lambda i, w: items.gate_progress(rollout, step_index, i, w)
        )

    # -- image builds --------------------------------------------------------------------------

    def _build_key(self, image: str, digest: str) -> dict[str, dict[str, str]]:
        return items.key(f"I#{self.project}#{image}", f"build#{digest}")

    def record_build(
        self, image: str, digest: str, attempt: int, handle: Mapping[str, Any], at: float
    ) -> BuildRecord:
        record = BuildRecord(image, digest, attempt, BUILD_RUNNING, dict(handle), at, at)
        item = {**self._build_key(image, digest), **items.attrs(items.build_values(record))}
        written = self._db.conditional(
            "put_item",
            Item=item,
            ConditionExpression="attribute_not_exists(#pk) OR #status <> :running",
            ExpressionAttributeNames={"#pk": "pk", "#status": "status"},
            ExpressionAttributeValues={":running": items.attr(BUILD_RUNNING)},
        )
        if written is not None:
            return record
        existing = self.get_build(image, digest)
        if existing is None:  # finished and removed meanwhile: never expected
            raise self._gave_up(f"record the build of image {image!r}")
        return replace(existing, recorded=False)

    def finish_build(
        self,
        image: str,
        digest: str,
        attempt: int,
        status: str,
        result: Mapping[str, Any],
        at: float,
    ) -> BuildRecord | None:
        response = self._db.conditional(
            "update_item",
            Key=self._build_key(image, digest),
            UpdateExpression="SET #status = :status, #result = :result, updated_at = :at",
            ConditionExpression="attempt = :attempt",
            ExpressionAttributeNames={"#status": "status", "#result": "result"},
            ExpressionAttributeValues={
                ":status": items.attr(text(status)),
                ":result": items.attr(to_json(dict(result))),
                ":at": items.attr(at),
                ":attempt": items.attr(attempt),
            },
            ReturnValues="ALL_NEW",
        )
        if response is None:
            return None
        return items.decode(self.table, response["Attributes"], items.build)

    def get_build(self, image: str, digest: str) -> BuildRecord | None:
        key = self._build_key(image, digest)
        item = self._db.get(key["pk"]["S"], key["sk"]["S"])
        return None if item is None else items.decode(self.table, item, items.build)

    def _seq(self, last: dict[str, Any]) -> int:
        return items.decode(self.table, last, lambda i, _: items.integer(i, "seq")) + 1

    def journal(self, rollout: str) -> list[JournalEntry]:
        return [
            items.decode(self.table, i, lambda i, w: items.journal_entry(rollout, i, w))
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
        fence = self._held.get(fleet)
        for _ in range(MAX_ATTEMPTS):
            existing = self.get_release(fleet, release)
            if existing is not None:
                return existing
            last = next(self._db.query(fleet_pk, "release#", newest_first=True, limit=1), None)
            seq = 1 if last is None else self._seq(last)
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
            if self._transact(writes, fence, f"record release {release!r}"):
                return self._release(values)
            # the sequence number or the release id was taken meanwhile: look again
        raise self._gave_up(f"record release {release!r} of fleet {fleet!r}")

    def _release(self, item: Mapping[str, Any]) -> ReleaseRecord:
        return items.decode(self.table, item, items.release)

    def releases(self, fleet: str) -> list[ReleaseRecord]:
        pages = self._db.query(self._fleet_pk(fleet), "release#", newest_first=True)
        return [self._release(item) for item in pages]

    def get_release(self, fleet: str, release: str) -> ReleaseRecord | None:
        item = self._db.get(self._fleet_pk(fleet), f"release-id#{release}")
        return None if item is None else self._release(item)

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
        signals = list(self._db.query(self._rollout_pk(rollout), "signal#"))
        fleet = self._fleet_of(rollout) if signals and self._held else None
        fence = None if fleet is None else self._held.get(fleet)
        for item in signals:
            name = items.decode(self.table, item, lambda i, _: items.string(i, "name"))
            key = {"pk": item["pk"], "sk": item["sk"]}
            if fence is not None:  # a stale holder must not take the new owner's signals
                delete = {
                    "Delete": {
                        "TableName": self.table,
                        "Key": key,
                        "ConditionExpression": "attribute_exists(#pk)",
                        "ExpressionAttributeNames": {"#pk": "pk"},
                    }
                }
                if self._transact([delete], fence, f"take the signals of rollout {rollout!r}"):
                    taken.append(name)
                continue  # not written: another process took it first
            response = self._db.call("delete_item", Key=key, ReturnValues="ALL_OLD")
            if response.get("Attributes"):  # absent: another process took it first
                taken.append(name)
        return taken

    # -- apply records -----------------------------------------------------------------------

    def put_apply(self, record: ApplyRecord) -> None:
        self._db.call(
            "put_item",
            Item={
                **items.key(f"A#{self.project}", f"apply#{record.id}"),
                **items.attrs(
                    {
                        "id": record.id,
                        "digest": record.digest,
                        "started_at": record.started_at,
                        "updated_at": record.updated_at,
                        "data": to_json(dict(record.data)),
                    }
                ),
            },
        )

    def latest_apply(self) -> ApplyRecord | None:
        found = list(self._db.query(f"A#{self.project}", "apply#"))
        records = [items.decode(self.table, i, items.apply_record) for i in found]
        return max(records, key=lambda r: (r.updated_at, r.id), default=None)

    # -- holds: quarantined releases and pins ---------------------------------------------------

    def put_hold(self, hold: Hold) -> None:
        values = {"fleet": hold.fleet, **hold_values(hold)}
        item = {**items.key(self._fleet_pk(hold.fleet), f"hold#{hold.slot}"), **items.attrs(values)}
        fence = self._held.get(hold.fleet)
        what = f"record the {hold.kind} of release {hold.release!r}"
        if fence is None:
            self._db.call("put_item", Item=item)
            return
        put = {"Put": {"TableName": self.table, "Item": item}}
        for _ in range(MAX_ATTEMPTS):
            if self._transact([put], fence, what):
                return
        raise self._gave_up(what)

    def holds(self, fleet: str) -> list[Hold]:
        return sorted_holds(
            [
                items.decode(self.table, item, items.hold)
                for item in self._db.query(self._fleet_pk(fleet), "hold#")
            ]
        )

    def drop_holds(self, fleet: str, kind: str, release: str | None = None) -> list[Hold]:
        gone = [h for h in self.holds(fleet) if h.kind == kind and release in (None, h.release)]
        fence = self._held.get(fleet)
        for hold in gone:
            key = items.key(self._fleet_pk(fleet), f"hold#{hold.slot}")
            if fence is None:
                self._db.call("delete_item", Key=key)
                continue
            delete = {"Delete": {"TableName": self.table, "Key": key}}
            what = f"remove the {kind} of fleet {fleet!r}"
            if not any(self._transact([delete], fence, what) for _ in range(MAX_ATTEMPTS)):
                raise self._gave_up(what)
        return gone

    def close(self) -> None:
        """Nothing to release: the client belongs to whoever passed it in."""
