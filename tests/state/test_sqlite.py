"""The SQLite store's own promises: a private file, refusing what it cannot read, migrations,
and one lock winner among processes."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from immutable_sdk.errors import StateError
from immutable_sdk.state import base, sqlite_schema
from immutable_sdk.state.sqlite import SqliteStateStore

from .conftest import T0


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def schema_version(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])


def test_the_file_and_its_folder_are_created_private(tmp_path: Path) -> None:
    path = tmp_path / "project" / ".immutable" / "state.db"
    old_umask = os.umask(0o022)  # a permissive umask must not widen the file
    try:
        with SqliteStateStore(path, "shop") as store:
            store.acquire_lock("web", "host:1:a", 60, T0)
            assert mode(path) == 0o600
            for companion in (Path(f"{path}-wal"), Path(f"{path}-shm")):  # WAL's own files
                assert mode(companion) == 0o600
    finally:
        os.umask(old_umask)
    assert mode(path.parent) == 0o700
    assert schema_version(path) == str(base.SCHEMA_VERSION)


def test_the_journal_mode_is_wal(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStateStore(path, "shop").close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_existing_file_keeps_its_data_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteStateStore(path, "shop") as store:
        store.record_release("web", "rel-a", {}, {}, T0)
    with SqliteStateStore(path, "shop") as store:
        assert [r.release for r in store.releases("web")] == ["rel-a"]
    assert mode(path) == 0o600


@pytest.mark.parametrize(
    "content",
    [
        os.urandom(4096),
        b"apiVersion: immutable-sdk/v1\nname: shop\n",
        b"SQLite format 3\x00" + os.urandom(4096),
        b"SQLite",
    ],
    ids=["random-bytes", "yaml", "sqlite-header-then-garbage", "truncated-header"],
)
def test_an_unreadable_file_is_refused_and_left_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(content)
    with pytest.raises(StateError) as caught:
        SqliteStateStore(path, "shop")
    assert str(path) in str(caught.value)
    assert "left untouched" in str(caught.value)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]


def test_a_foreign_sqlite_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    before = path.read_bytes()
    with pytest.raises(StateError, match=r"not immutable-sdk state \(it has tables users"):
        SqliteStateStore(path, "shop")
    assert path.read_bytes() == before


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="not a regular file"):
        SqliteStateStore(tmp_path, "shop")


def test_a_database_from_a_newer_version_is_refused_and_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStateStore(path, "shop").close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    db.close()
    before = path.read_bytes()
    with pytest.raises(StateError) as caught:
        SqliteStateStore(path, "shop")
    message = str(caught.value)
    assert "schema version 7" in message
    assert f"versions up to {base.SCHEMA_VERSION}" in message
    assert str(path) in message
    assert path.read_bytes() == before


def test_the_newest_migration_is_the_schema_version() -> None:
    assert max(sqlite_schema.MIGRATIONS) == base.SCHEMA_VERSION
    assert sorted(sqlite_schema.MIGRATIONS) == list(range(1, base.SCHEMA_VERSION + 1))


def test_an_empty_file_is_migrated_from_version_zero(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.touch(mode=0o600)
    with SqliteStateStore(path, "shop") as store:
        store.acquire_lock("web", "host:1:a", 60, T0)
    assert schema_version(path) == str(base.SCHEMA_VERSION)
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "locks", "rollouts", "journal", "releases", "signals"} <= tables


def test_pending_migrations_run_in_order_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.db"
    with SqliteStateStore(path, "shop") as store:
        store.record_release("web", "rel-a", {}, {}, T0)
    latest = max(sqlite_schema.MIGRATIONS)
    applied: list[int] = []

    def add_labels(db: sqlite3.Connection) -> None:
        applied.append(latest + 1)
        db.execute("ALTER TABLE releases ADD COLUMN label TEXT NOT NULL DEFAULT 'none'")

    def fill_labels(db: sqlite3.Connection) -> None:
        applied.append(latest + 2)
        db.execute("UPDATE releases SET label = 'seq-' || seq")

    monkeypatch.setitem(sqlite_schema.MIGRATIONS, latest + 1, add_labels)
    monkeypatch.setitem(sqlite_schema.MIGRATIONS, latest + 2, fill_labels)
    with SqliteStateStore(path, "shop") as store:
        assert [r.release for r in store.releases("web")] == ["rel-a"]
    assert applied == [latest + 1, latest + 2]
    assert schema_version(path) == str(latest + 2)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT label FROM releases").fetchall() == [("seq-1",)]
    SqliteStateStore(path, "shop").close()  # nothing pending: nothing runs again
    assert applied == [latest + 1, latest + 2]


def test_a_failing_migration_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.db"
    SqliteStateStore(path, "shop").close()
    latest = max(sqlite_schema.MIGRATIONS)

    def half_done(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE extra (x TEXT)")
        db.execute("INSERT INTO no_such_table VALUES (1)")

    monkeypatch.setitem(sqlite_schema.MIGRATIONS, latest + 1, half_done)
    with pytest.raises(StateError, match="no such table"):
        SqliteStateStore(path, "shop")
    assert schema_version(path) == str(latest)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'extra'").fetchall() == []


RACER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from immutable_sdk.errors import LockHeld
    from immutable_sdk.state.sqlite import SqliteStateStore

    store = SqliteStateStore(Path(sys.argv[1]), "shop")
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        store.acquire_lock("web", sys.argv[2], 60.0, time.time())
        print("won", flush=True)
    except LockHeld as exc:
        print("held by " + exc.owner, flush=True)
    """
)


def test_processes_racing_for_a_lock_have_exactly_one_winner(tmp_path: Path) -> None:
    path = tmp_path / ".immutable" / "state.db"  # not created yet: the processes race for it too
    owners = [f"host:{i}:racer" for i in range(6)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(path), owner],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for owner in owners
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line == "ready", proc.stderr.read() if proc.stderr else line
        for proc in procs:  # release them together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            results.append(out.strip())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    winners = [owner for owner, result in zip(owners, results, strict=True) if result == "won"]
    assert len(winners) == 1, results
    assert sorted(results) == sorted(["won"] + [f"held by {winners[0]}"] * 5)
    with SqliteStateStore(path, "shop") as store:
        assert store.get_lock("web").owner == winners[0]  # type: ignore[union-attr]


def test_a_version_1_file_is_migrated_to_fencing_epochs_keeping_its_locks(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        sqlite_schema.MIGRATIONS[1](db)
        db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
        db.execute(
            "INSERT INTO locks (project, fleet, owner, acquired_at, lease_until) "
            "VALUES ('shop', 'web', 'host:1:a', ?, ?)",
            (T0, T0 + 60),
        )
    db.close()
    with SqliteStateStore(path, "shop") as store:
        held = store.get_lock("web")
        assert held is not None and (held.owner, held.epoch) == ("host:1:a", 0)
        assert store.acquire_lock("web", "host:2:b", 60, T0 + 61).epoch == 1
        store.force_unlock("web")
        assert store.acquire_lock("web", "host:1:a", 60, T0 + 62).epoch == 3
    assert schema_version(path) == str(base.SCHEMA_VERSION)


def test_an_existing_readable_file_is_made_private_and_it_is_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / ".immutable"
    path = folder / "state.db"
    SqliteStateStore(path, "shop").close()
    os.chmod(path, 0o644)
    os.chmod(folder, 0o755)
    reader = sqlite3.connect(path)  # keeps -wal and -shm, made now with mode 0644
    reader.execute("SELECT * FROM meta").fetchall()
    for suffix in ("-wal", "-shm"):
        os.chmod(path.with_name(path.name + suffix), 0o644)
    with SqliteStateStore(path, "shop") as store:
        store.acquire_lock("web", "host:1:a", 60, T0)
    assert (mode(path), mode(folder)) == (0o600, 0o700)
    for suffix in ("-wal", "-shm"):  # made by SQLite while the file was 0644
        assert mode(path.with_name(path.name + suffix)) == 0o600
    err = capsys.readouterr().err
    assert "state.permissions_tightened" in err and "0644" in err and str(path) in err
    SqliteStateStore(path, "shop").close()  # private already: nothing to say
    assert "permissions_tightened" not in capsys.readouterr().err
    reader.close()


def test_a_users_own_folder_keeps_its_mode(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    SqliteStateStore(folder / "state.db", "shop").close()
    assert (mode(folder / "state.db"), mode(folder)) == (0o600, 0o755)


def test_every_folder_the_store_creates_is_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        SqliteStateStore(tmp_path / "a" / "b" / ".immutable" / "state.db", "shop").close()
    finally:
        os.umask(old)
    for folder in ("a", "a/b", "a/b/.immutable"):
        assert mode(tmp_path / folder) == 0o700, folder
