"""The SQLite state file on disk: private creation, the format check, schema migrations.

``MIGRATIONS[v]`` turns a version ``v - 1`` database into version ``v``; the store runs the
pending ones in one transaction together with the version bump in the ``meta`` table. An empty
file is version 0. The newest key is the schema version this code writes.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

from ..errors import StateError

SQLITE_MAGIC = b"SQLite format 3\x00"

Migration = Callable[[sqlite3.Connection], None]


def _migrate_to_1(db: sqlite3.Connection) -> None:
    statements = [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE locks (
            project TEXT NOT NULL, fleet TEXT NOT NULL, owner TEXT NOT NULL,
            acquired_at REAL NOT NULL, lease_until REAL NOT NULL,
            PRIMARY KEY (project, fleet))""",
        """CREATE TABLE rollouts (
            project TEXT NOT NULL, id TEXT NOT NULL, fleet TEXT NOT NULL,
            strategy TEXT NOT NULL, from_release TEXT, to_release TEXT NOT NULL,
            phase TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL,
            outcome TEXT, error TEXT, owner TEXT,
            steps TEXT NOT NULL DEFAULT '[]', data TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (project, id))""",
        "CREATE INDEX rollouts_by_fleet ON rollouts (project, fleet, started_at, id)",
        "CREATE INDEX rollouts_by_time ON rollouts (project, started_at, id)",
        """CREATE TABLE journal (
            project TEXT NOT NULL, rollout TEXT NOT NULL, seq INTEGER NOT NULL,
            step_index INTEGER NOT NULL, status TEXT NOT NULL, at REAL NOT NULL,
            data TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (project, rollout, seq))""",
        """CREATE TABLE releases (
            project TEXT NOT NULL, fleet TEXT NOT NULL, release TEXT NOT NULL,
            seq INTEGER NOT NULL, artifact TEXT NOT NULL, launch_config TEXT NOT NULL,
            created_at REAL NOT NULL, rollout TEXT,
            PRIMARY KEY (project, fleet, release), UNIQUE (project, fleet, seq))""",
        """CREATE TABLE signals (
            id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL,
            rollout TEXT NOT NULL, name TEXT NOT NULL, at REAL NOT NULL)""",
        "CREATE INDEX signals_by_rollout ON signals (project, rollout, at, id)",
    ]
    for statement in statements:
        db.execute(statement)


def _migrate_to_2(db: sqlite3.Connection) -> None:
    """Fencing: each lock carries its epoch; ``lock_epochs`` keeps every fleet's counter, so
    an epoch never goes back, also after a forced unlock deleted the lock row. Locks held
    when the file is migrated get epoch 0: their next acquisition gets epoch 1. Journal
    entries record the epoch of the lock their writer held."""
    db.execute("ALTER TABLE locks ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0")
    db.execute(
        """CREATE TABLE lock_epochs (
            project TEXT NOT NULL, fleet TEXT NOT NULL, epoch INTEGER NOT NULL,
            PRIMARY KEY (project, fleet))"""
    )
    db.execute(
        "INSERT INTO lock_epochs (project, fleet, epoch) SELECT project, fleet, 0 FROM locks"
    )
    db.execute("ALTER TABLE journal ADD COLUMN epoch INTEGER")  # the writer's; NULL: unfenced


def _migrate_to_3(db: sqlite3.Connection) -> None:
    """Holds: operator decisions that apply respects (a quarantined release, a pin), one row
    per (fleet, slot): ``pin``, or ``quarantine#{release}``. Nothing existing is rewritten."""
    db.execute(
        """CREATE TABLE holds (
            project TEXT NOT NULL, fleet TEXT NOT NULL, slot TEXT NOT NULL,
            kind TEXT NOT NULL, release TEXT NOT NULL, at REAL NOT NULL,
            rollout TEXT, reason TEXT, data TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (project, fleet, slot))"""
    )


def _migrate_to_4(db: sqlite3.Connection) -> None:
    """Apply records (a plan's progress across reconcile ticks, ``base.ApplyRecord``); durable
    waits: a suspended gate's progress per rollout step, image builds that outlast a process
    (by image and digest), and an index to find a journal transition by its step and status
    (``append_journal`` writes each at most once)."""
    db.execute(
        """CREATE TABLE applies (
            project TEXT NOT NULL, id TEXT NOT NULL, digest TEXT NOT NULL,
            started_at REAL NOT NULL, updated_at REAL NOT NULL,
            data TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (project, id))"""
    )
    db.execute("CREATE INDEX applies_by_time ON applies (project, updated_at, id)")
    db.execute(
        """CREATE TABLE gate_progress (
            project TEXT NOT NULL, rollout TEXT NOT NULL, step_index INTEGER NOT NULL,
            progress TEXT NOT NULL, saved_at REAL NOT NULL, epoch INTEGER,
            PRIMARY KEY (project, rollout, step_index))"""
    )
    db.execute(
        """CREATE TABLE image_builds (
            project TEXT NOT NULL, image TEXT NOT NULL, digest TEXT NOT NULL,
            attempt INTEGER NOT NULL, status TEXT NOT NULL, handle TEXT NOT NULL,
            started_at REAL NOT NULL, updated_at REAL NOT NULL,
            result TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (project, image, digest))"""
    )
    db.execute("CREATE INDEX journal_transitions ON journal (project, rollout, step_index, status)")


# version -> the function that brings a database from version - 1 to it; the newest key is the
# schema version this code writes (tests check it equals base.SCHEMA_VERSION).
MIGRATIONS: dict[int, Migration] = {
    1: _migrate_to_1,
    2: _migrate_to_2,
    3: _migrate_to_3,
    4: _migrate_to_4,
}


def create_private(path: Path) -> None:
    """Create ``path`` (and the folders it needs) readable by its owner only, unless it exists."""
    try:
        _make_private_dirs(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StateError(f"{path}: cannot create the state database: {exc.strerror}") from exc
    os.close(fd)


def make_private(path: Path) -> None:
    """Tighten a state file that others may read (0644 from an older version or a copy) to
    0600, and the SDK's own folder (``.immutable``) to 0700; each change is logged. Called
    once the file is known to be a state database (anything else is left untouched)."""
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists():  # SQLite made -wal and -shm with the mode the file had then
            _tighten(file, 0o600)
    if path.parent.name == OWN_FOLDER:
        _tighten(path.parent, 0o700)


OWN_FOLDER = ".immutable"  # the default state folder, the SDK's own


def _make_private_dirs(folder: Path) -> None:
    """``mkdir -p`` where every folder made is 0700 (``Path.mkdir(parents=True)`` gives the
    intermediate ones the umask's mode)."""
    missing: list[Path] = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for made in reversed(missing):
        try:
            made.mkdir(mode=0o700)
        except FileExistsError:  # another process made it meanwhile
            continue
        os.chmod(made, 0o700)  # whatever the umask


def _tighten(path: Path, mode: int) -> None:
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise StateError(f"{path}: cannot read its mode: {exc.strerror}") from exc
    if current & ~mode & 0o077 == 0:
        return
    try:
        os.chmod(path, current & mode)
    except OSError as exc:
        raise StateError(
            f"{path}: others may read it (mode {current:04o}) and it cannot be made private: "
            f"{exc.strerror}"
        ) from exc
    from ..logs import get_logger

    get_logger().warning(
        "state.permissions_tightened",
        path=str(path),
        mode_was=f"{current:04o}",
        mode=f"{current & mode:04o}",
    )


def check_header(path: Path) -> None:
    """Refuse a file that is not SQLite without letting SQLite near it."""
    if not path.is_file():
        raise StateError(f"{path}: the state database path is not a regular file")
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise StateError(f"{path}: cannot read the state database: {exc.strerror}") from exc
    if head and head != SQLITE_MAGIC:
        raise StateError(
            f"{path}: not an SQLite database (corrupt or a different file); it was left "
            "untouched: move it aside or point state.path elsewhere"
        )
