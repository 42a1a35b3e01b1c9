"""The embedded state store: one SQLite file, ``.immutable/state.db`` by default.

The file is created with mode 0600 before SQLite opens it (SQLite gives its ``-wal`` and ``-shm``
files the same mode); an existing state file others may read is tightened to 0600 once it is known
to be one (``sqlite_schema.make_private``). The journal mode is WAL, so readers never block the
writer, and a busy timeout makes concurrent writers wait instead of failing. Every write that reads
first runs in a ``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock up front:
processes racing for a fleet's lock serialize there, and exactly one wins.

The ``meta`` table holds ``schema_version``; pending migrations (``sqlite_schema.MIGRATIONS``) run
in one transaction together with the version bump. A file that is not SQLite, a database with
foreign tables, or one from a newer immutable-sdk is refused before anything is written to it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import LockHeld, StateError
from . import fencing, sqlite_schema
from .base import (
    BUILD_RUNNING,
    REPEATABLE_STATUSES,
    ApplyRecord,
    BuildRecord,
    Hold,
    JournalEntry,
    LockInfo,
    ReleaseRecord,
    RolloutRecord,
    SavedGateProgress,
)
from .records import (
    from_json,
    hold_values,
    lock_lost,
    optional_text,
    rollout_changes,
    sorted_holds,
    steps_from_json,
    text,
    to_json,
)

BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's transaction


_ROLLOUT_COLUMNS = (
    "id, fleet, strategy, from_release, to_release, phase, started_at, finished_at, "
    "outcome, error, owner, steps, data"
)
_RELEASE_COLUMNS = "fleet, release, seq, artifact, launch_config, created_at, rollout"


class SqliteStateStore:
    """StateStore on one SQLite file; safe to share between threads and processes."""

    def __init__(self, path: Path, project: str, *, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = Path(path)
        self.project = project
        self._lock = threading.RLock()
        self._held = fencing.HeldLocks()
        sqlite_schema.create_private(self.path)
        sqlite_schema.check_header(self.path)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: cannot open the state database: {exc}") from exc
        try:
            self._open()
            sqlite_schema.make_private(self.path)
        except BaseException:
            self._db.close()
            raise

    # -- opening and migrations ------------------------------------------------------------

    def _version(self) -> int:
        tables = {
            row[0]
            for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if "meta" not in tables:
            if tables - {"sqlite_sequence"}:
                raise StateError(
                    f"{self.path}: an SQLite database but not immutable-sdk state (it has tables "
                    f"{', '.join(sorted(tables))} and no meta table); it was left untouched"
                )
            return 0
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _open(self) -> None:
        migrations = sqlite_schema.MIGRATIONS
        latest = max(migrations)
        try:
            version = self._version()
            self._refuse_newer(version, latest)
            if version < latest:
                self._db.execute("PRAGMA journal_mode = WAL")
                with self._write() as db:
                    version = self._version()  # another process may have migrated meanwhile
                    self._refuse_newer(version, latest)
                    for target in range(version + 1, latest + 1):
                        migrations[target](db)
                        db.execute(
                            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                            (str(target),),
                        )
            else:
                self._db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.DatabaseError as exc:
            raise StateError(
                f"{self.path}: not a readable SQLite database ({exc}); it was left untouched: "
                "move it aside or point state.path elsewhere"
            ) from exc

    def _refuse_newer(self, version: int, latest: int) -> None:
        if version > latest:
            raise StateError(
                f"{self.path}: the state database has schema version {version}, but this "
                f"immutable-sdk understands versions up to {latest}; upgrade immutable-sdk "
                "(nothing was written)"
            )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StateError(f"{self.path}: cannot write the state database: {exc}") from exc
            try:
                yield self._db
            except BaseException as exc:
                self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StateError(f"{self.path}: {exc}") from exc
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StateError(
                    f"{self.path}: cannot commit to the state database: {exc}"
                ) from exc

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StateError(f"{self.path}: {exc}") from exc

    # -- locks -------------------------------------------------------------------------------

    def _lock_row(self, db: sqlite3.Connection, fleet: str) -> LockInfo | None:
        row = db.execute(
            "SELECT owner, acquired_at, lease_until, epoch FROM locks "
            "WHERE project = ? AND fleet = ?",
            (self.project, fleet),
        ).fetchone()
        return None if row is None else LockInfo(fleet, row[0], row[1], row[2], row[3])

    def _next_epoch(self, db: sqlite3.Connection, fleet: str) -> int:
        """Raise the fleet's epoch counter (kept when its lock row goes) and return it."""
        db.execute(
            "INSERT INTO lock_epochs (project, fleet, epoch) VALUES (?, ?, 1) "
            "ON CONFLICT (project, fleet) DO UPDATE SET epoch = epoch + 1",
            (self.project, fleet),
        )
        (epoch,) = db.execute(
            "SELECT epoch FROM lock_epochs WHERE project = ? AND fleet = ?", (self.project, fleet)
        ).fetchone()
        return int(epoch)

    def _fenced(self, db: sqlite3.Connection, fleet: str, what: str) -> None:
        """Refuse (LockLost) a write for ``fleet`` when this store's lock on it is gone."""
        fence = self._held.get(fleet)
        if fence is None:
            return
        current = self._lock_row(db, fleet)
        if not fence.admits(current):
            raise fencing.refused(fence, current, what)

    def acquire_lock(self, fleet: str, owner: str, lease: float, now: float) -> LockInfo:
        with self._write() as db:
            current = self._lock_row(db, fleet)
            if current and current.owner != owner and current.lease_until >= now:
                raise LockHeld(fleet, current.owner, current.acquired_at, current.lease_until)
            if current and current.owner == owner:
                since, epoch = current.acquired_at, current.epoch
            else:
                since, epoch = now, self._next_epoch(db, fleet)
            info = LockInfo(fleet, owner, since, now + lease, epoch)
            db.execute(
                "INSERT OR REPLACE INTO locks "
                "(project, fleet, owner, acquired_at, lease_until, epoch) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (self.project, fleet, owner, info.acquired_at, info.lease_until, epoch),
            )
        self._held.hold(info)
        return info

    def renew_lock(self, fleet: str, owner: str, lease: float, now: float) -> LockInfo:
        with self._write() as db:
            current = self._lock_row(db, fleet)
            fence = self._held.get(fleet)
            if fence is not None and fence.owner == owner:
                if not fence.admits(current):
                    raise fencing.refused(fence, current, "renew the lease")
            elif current is None or current.owner != owner:
                raise lock_lost(fleet, owner, current)
            db.execute(
                "UPDATE locks SET lease_until = ? WHERE project = ? AND fleet = ?",
                (now + lease, self.project, fleet),
            )
        assert current is not None  # checked above
        return LockInfo(fleet, owner, current.acquired_at, now + lease, current.epoch)

    def release_lock(self, fleet: str, owner: str) -> bool:
        fence = self._held.get(fleet)
        epoch = fence.epoch if fence is not None and fence.owner == owner else None
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM locks WHERE project = ? AND fleet = ? AND owner = ? "
                "AND (? IS NULL OR epoch = ?)",
                (self.project, fleet, owner, epoch, epoch),
            )
            released = cur.rowcount > 0
        if released:
            self._held.drop(fleet, owner)
        return released

    def force_unlock(self, fleet: str) -> LockInfo | None:
        with self._write() as db:
            current = self._lock_row(db, fleet)
            db.execute("DELETE FROM locks WHERE project = ? AND fleet = ?", (self.project, fleet))
            self._next_epoch(db, fleet)  # the removed holder's epoch is stale from now on
        return current

    def get_lock(self, fleet: str) -> LockInfo | None:
        with self._lock:
            try:
                return self._lock_row(self._db, fleet)
            except sqlite3.Error as exc:
                raise StateError(f"{self.path}: {exc}") from exc

    # -- rollouts and journal ------------------------------------------------------------------

    def _where(self, table: str, key: str) -> str:
        return f"{self.path}: table {table}, {key} (project {self.project!r})"

    def _rollout(self, row: tuple[Any, ...]) -> RolloutRecord:
        where = self._where("rollouts", f"rollout {row[0]!r}")
        return RolloutRecord(
            id=row[0],
            fleet=row[1],
            strategy=row[2],
            from_release=row[3],
            to_release=row[4],
            phase=row[5],
            started_at=row[6],
            finished_at=row[7],
            outcome=row[8],
            error=row[9],
            owner=row[10],
            steps=steps_from_json(row[11], f"{where}, column steps"),
            data=from_json(row[12], {}, f"{where}, column data"),
        )

    def _require_rollout(self, db: sqlite3.Connection, rollout: str) -> str:
        """The rollout's fleet; StateError when there is no such rollout."""
        row = db.execute(
            "SELECT fleet FROM rollouts WHERE project = ? AND id = ?", (self.project, rollout)
        ).fetchone()
        if row is None:
            raise StateError(f"no rollout {rollout!r} in project {self.project!r}")
        return str(row[0])

    def start_rollout(self, record: RolloutRecord) -> None:
        with self._write() as db:
            self._fenced(db, record.fleet, f"start rollout {record.id!r}")
            try:
                db.execute(
                    f"INSERT INTO rollouts (project, {_ROLLOUT_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.project,
                        record.id,
                        record.fleet,
                        record.strategy,
                        record.from_release,
                        record.to_release,
                        text(record.phase),
                        record.started_at,
                        record.finished_at,
                        optional_text(record.outcome),
                        record.error,
                        record.owner,
                        to_json([dict(s) for s in record.steps]),
                        to_json(dict(record.data)),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise StateError(
                    f"rollout {record.id!r} already exists in project {self.project!r}"
                ) from exc

    def update_rollout(self, rollout: str, **changes: Any) -> RolloutRecord:
        values = rollout_changes(rollout, changes)
        with self._write() as db:
            fleet = self._require_rollout(db, rollout)
            if values:
                self._fenced(db, fleet, f"update rollout {rollout!r}")
                assignments = ", ".join(f"{name} = ?" for name in values)
                db.execute(
                    f"UPDATE rollouts SET {assignments} WHERE project = ? AND id = ?",
                    (*values.values(), self.project, rollout),
                )
            row = db.execute(
                f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts WHERE project = ? AND id = ?",
                (self.project, rollout),
            ).fetchone()
        return self._rollout(row)

    def get_rollout(self, rollout: str) -> RolloutRecord | None:
        rows = self._read(
            f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts WHERE project = ? AND id = ?",
            (self.project, rollout),
        )
        return self._rollout(rows[0]) if rows else None

    def rollouts(self, fleet: str | None = None, limit: int = 50) -> list[RolloutRecord]:
        if limit <= 0:
            return []
        where, params = "project = ?", [self.project]
        if fleet is not None:
            where, params = "project = ? AND fleet = ?", [self.project, fleet]
        rows = self._read(
            f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts WHERE {where} "
            "ORDER BY started_at DESC, id DESC LIMIT ?",
            (*params, limit),
        )
        return [self._rollout(r) for r in rows]

    def fleets(self) -> list[str]:
        rows = self._read(
            "SELECT DISTINCT fleet FROM rollouts WHERE project = ? ORDER BY fleet", (self.project,)
        )
        return [str(r[0]) for r in rows]

    def unfinished_rollout(self, fleet: str) -> RolloutRecord | None:
        rows = self._read(
            f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts "
            "WHERE project = ? AND fleet = ? AND outcome IS NULL "
            "ORDER BY started_at DESC, id DESC LIMIT 1",
            (self.project, fleet),
        )
        return self._rollout(rows[0]) if rows else None

    def append_journal(
        self, rollout: str, step_index: int, status: str, at: float, data: Mapping[str, Any]
    ) -> JournalEntry:
        encoded = to_json(dict(data))
        with self._write() as db:
            fleet = self._require_rollout(db, rollout)
            self._fenced(db, fleet, f"append to the journal of rollout {rollout!r}")
            if text(status) not in REPEATABLE_STATUSES:
                first = db.execute(
                    "SELECT seq, at, data, epoch FROM journal WHERE project = ? AND rollout = ? "
                    "AND step_index = ? AND status = ? ORDER BY seq LIMIT 1",
                    (self.project, rollout, step_index, text(status)),
                ).fetchone()
                if first is not None:  # journaled already (by another process, or before)
                    where = self._where("journal", f"rollout {rollout!r} seq {first[0]}")
                    return JournalEntry(
                        rollout,
                        first[0],
                        step_index,
                        text(status),
                        first[1],
                        from_json(first[2], {}, where + ", column data"),
                        first[3],
                        appended=False,
                    )
            (seq,) = db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM journal WHERE project = ? AND rollout = ?",
                (self.project, rollout),
            ).fetchone()
            fence = self._held.get(fleet)
            epoch = None if fence is None else fence.epoch
            db.execute(
                "INSERT INTO journal (project, rollout, seq, step_index, status, at, data, epoch) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.project, rollout, seq, step_index, text(status), at, encoded, epoch),
            )
        return JournalEntry(
            rollout,
            seq,
            step_index,
            text(status),
            at,
            from_json(encoded, {}, "journal entry"),
            epoch,
        )

    def journal(self, rollout: str) -> list[JournalEntry]:
        rows = self._read(
            "SELECT seq, step_index, status, at, data, epoch FROM journal "
            "WHERE project = ? AND rollout = ? ORDER BY seq",
            (self.project, rollout),
        )
        return [
            JournalEntry(
                rollout,
                r[0],
                r[1],
                r[2],
                r[3],
                from_json(
                    r[4],
                    {},
                    self._where("journal", f"rollout {rollout!r} seq {r[0]}") + ", column data",
                ),
                r[5],
            )
            for r in rows
        ]

    # -- gate progress -------------------------------------------------------------------------

    def save_gate_progress(
        self, rollout: str, step_index: int, progress: Mapping[str, Any], at: float
    ) -> SavedGateProgress:
        encoded = to_json(dict(progress))
        with self._write() as db:
            fleet = self._require_rollout(db, rollout)
            self._fenced(db, fleet, f"save the gate progress of rollout {rollout!r}")
            fence = self._held.get(fleet)
            epoch = None if fence is None else fence.epoch
            db.execute(
                "INSERT OR REPLACE INTO gate_progress "
                "(project, rollout, step_index, progress, saved_at, epoch) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (self.project, rollout, step_index, encoded, at, epoch),
            )
        return SavedGateProgress(
            rollout, step_index, from_json(encoded, {}, "gate progress"), at, epoch
        )

    def gate_progress(self, rollout: str, step_index: int) -> SavedGateProgress | None:
        rows = self._read(
            "SELECT progress, saved_at, epoch FROM gate_progress "
            "WHERE project = ? AND rollout = ? AND step_index = ?",
            (self.project, rollout, step_index),
        )
        if not rows:
            return None
        where = self._where("gate_progress", f"rollout {rollout!r} step {step_index}")
        progress, saved_at, epoch = rows[0]
        return SavedGateProgress(
            rollout,
            step_index,
            from_json(progress, {}, where + ", column progress"),
            saved_at,
            epoch,
        )

    # -- image builds --------------------------------------------------------------------------

    _BUILD_COLUMNS = "image, digest, attempt, status, handle, started_at, updated_at, result"

    def _build(self, row: tuple[Any, ...], *, recorded: bool = True) -> BuildRecord:
        where = self._where("image_builds", f"image {row[0]!r} digest {row[1]!r}")
        return BuildRecord(
            image=row[0],
            digest=row[1],
            attempt=row[2],
            status=row[3],
            handle=from_json(row[4], {}, where + ", column handle"),
            started_at=row[5],
            updated_at=row[6],
            result=from_json(row[7], {}, where + ", column result"),
            recorded=recorded,
        )

    def record_build(
        self, image: str, digest: str, attempt: int, handle: Mapping[str, Any], at: float
    ) -> BuildRecord:
        select = (
            f"SELECT {self._BUILD_COLUMNS} FROM image_builds "
            "WHERE project = ? AND image = ? AND digest = ?"
        )
        with self._write() as db:
            existing = db.execute(select, (self.project, image, digest)).fetchone()
            if existing is not None and existing[3] == BUILD_RUNNING:
                return self._build(existing, recorded=False)
            db.execute(
                f"INSERT OR REPLACE INTO image_builds (project, {self._BUILD_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}')",
                (
                    self.project,
                    image,
                    digest,
                    attempt,
                    BUILD_RUNNING,
                    to_json(dict(handle)),
                    at,
                    at,
                ),
            )
            row = db.execute(select, (self.project, image, digest)).fetchone()
        return self._build(row)

    def finish_build(
        self,
        image: str,
        digest: str,
        attempt: int,
        status: str,
        result: Mapping[str, Any],
        at: float,
    ) -> BuildRecord | None:
        with self._write() as db:
            changed = db.execute(
                "UPDATE image_builds SET status = ?, result = ?, updated_at = ? "
                "WHERE project = ? AND image = ? AND digest = ? AND attempt = ?",
                (text(status), to_json(dict(result)), at, self.project, image, digest, attempt),
            ).rowcount
            row = db.execute(
                f"SELECT {self._BUILD_COLUMNS} FROM image_builds "
                "WHERE project = ? AND image = ? AND digest = ?",
                (self.project, image, digest),
            ).fetchone()
        return self._build(row) if changed and row is not None else None

    def get_build(self, image: str, digest: str) -> BuildRecord | None:
        rows = self._read(
            f"SELECT {self._BUILD_COLUMNS} FROM image_builds "
            "WHERE project = ? AND image = ? AND digest = ?",
            (self.project, image, digest),
        )
        return self._build(rows[0]) if rows else None

    # -- releases ------------------------------------------------------------------------------

    def _release(self, row: tuple[Any, ...]) -> ReleaseRecord:
        where = self._where("releases", f"fleet {row[0]!r} release {row[1]!r}")
        return ReleaseRecord(
            fleet=row[0],
            release=row[1],
            seq=row[2],
            artifact=from_json(row[3], {}, f"{where}, column artifact"),
            launch_config=from_json(row[4], {}, f"{where}, column launch_config"),
            created_at=row[5],
            rollout=row[6],
        )

    def record_release(
        self,
        fleet: str,
        release: str,
        artifact: Mapping[str, Any],
        launch_config: Mapping[str, Any],
        created_at: float,
        rollout: str | None = None,
    ) -> ReleaseRecord:
        select = (
            f"SELECT {_RELEASE_COLUMNS} FROM releases "
            "WHERE project = ? AND fleet = ? AND release = ?"
        )
        row_key = (self.project, fleet, release)
        with self._write() as db:
            existing = db.execute(select, row_key).fetchone()
            if existing is None:
                self._fenced(db, fleet, f"record release {release!r}")
                (seq,) = db.execute(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM releases "
                    "WHERE project = ? AND fleet = ?",
                    (self.project, fleet),
                ).fetchone()
                db.execute(
                    f"INSERT INTO releases (project, {_RELEASE_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        *row_key,
                        seq,
                        to_json(dict(artifact)),
                        to_json(dict(launch_config)),
                        created_at,
                        rollout,
                    ),
                )
                existing = db.execute(select, row_key).fetchone()
        return self._release(existing)

    def releases(self, fleet: str) -> list[ReleaseRecord]:
        rows = self._read(
            f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE project = ? AND fleet = ? "
            "ORDER BY seq DESC",
            (self.project, fleet),
        )
        return [self._release(r) for r in rows]

    def get_release(self, fleet: str, release: str) -> ReleaseRecord | None:
        rows = self._read(
            f"SELECT {_RELEASE_COLUMNS} FROM releases "
            "WHERE project = ? AND fleet = ? AND release = ?",
            (self.project, fleet, release),
        )
        return self._release(rows[0]) if rows else None

    # -- operator signals ----------------------------------------------------------------------

    def send_signal(self, rollout: str, name: str, at: float) -> None:
        with self._write() as db:
            self._require_rollout(db, rollout)
            db.execute(
                "INSERT INTO signals (project, rollout, name, at) VALUES (?, ?, ?, ?)",
                (self.project, rollout, text(name), at),
            )

    def take_signals(self, rollout: str) -> list[str]:
        with self._write() as db:
            rows = db.execute(
                "SELECT id, name FROM signals WHERE project = ? AND rollout = ? ORDER BY at, id",
                (self.project, rollout),
            ).fetchall()
            if rows:  # a stale holder must not take the new owner's signals
                fleet = db.execute(
                    "SELECT fleet FROM rollouts WHERE project = ? AND id = ?",
                    (self.project, rollout),
                ).fetchone()
                if fleet is not None:
                    self._fenced(db, str(fleet[0]), f"take the signals of rollout {rollout!r}")
            db.executemany("DELETE FROM signals WHERE id = ?", [(r[0],) for r in rows])
        return [r[1] for r in rows]

    # -- holds: quarantined releases and pins ---------------------------------------------------

    def put_hold(self, hold: Hold) -> None:
        values = hold_values(hold)
        with self._write() as db:
            self._fenced(db, hold.fleet, f"record the {hold.kind} of release {hold.release!r}")
            db.execute(
                "INSERT OR REPLACE INTO holds "
                "(project, fleet, slot, kind, release, at, rollout, reason, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.project, hold.fleet, *values.values()),
            )

    def _holds(self, db: sqlite3.Connection, fleet: str, kind: str | None) -> list[Hold]:
        rows = db.execute(
            "SELECT kind, release, at, rollout, reason, data FROM holds "
            "WHERE project = ? AND fleet = ? AND (? IS NULL OR kind = ?)",
            (self.project, fleet, kind, kind),
        ).fetchall()
        where = self._where("holds", f"fleet {fleet!r}")
        return sorted_holds(
            [
                Hold(fleet, r[0], r[1], r[2], r[3], r[4], from_json(r[5], {}, f"{where}, data"))
                for r in rows
            ]
        )

    def holds(self, fleet: str) -> list[Hold]:
        with self._lock:
            try:
                return self._holds(self._db, fleet, None)
            except sqlite3.Error as exc:
                raise StateError(f"{self.path}: {exc}") from exc

    def drop_holds(self, fleet: str, kind: str, release: str | None = None) -> list[Hold]:
        with self._write() as db:
            gone = [h for h in self._holds(db, fleet, kind) if release in (None, h.release)]
            if gone:
                self._fenced(db, fleet, f"remove the {kind} of fleet {fleet!r}")
            db.executemany(
                "DELETE FROM holds WHERE project = ? AND fleet = ? AND slot = ?",
                [(self.project, fleet, h.slot) for h in gone],
            )
        return gone

    # -- lifetime ------------------------------------------------------------------------------

    # -- apply records -----------------------------------------------------------------------

    def put_apply(self, record: ApplyRecord) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO applies "
                "(project, id, digest, started_at, updated_at, data) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self.project,
                    record.id,
                    record.digest,
                    record.started_at,
                    record.updated_at,
                    to_json(dict(record.data)),
                ),
            )

    def latest_apply(self) -> ApplyRecord | None:
        rows = self._read(
            "SELECT id, digest, started_at, updated_at, data FROM applies WHERE project = ? "
            "ORDER BY updated_at DESC, id DESC LIMIT 1",
            (self.project,),
        )
        if not rows:
            return None
        ident, digest, started, updated, data = rows[0]
        where = f"{self.path}: table applies, id {ident!r}, column data"
        return ApplyRecord(
            str(ident), str(digest), float(started), float(updated), from_json(data, {}, where)
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteStateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
