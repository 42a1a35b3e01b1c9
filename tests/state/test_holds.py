"""Holds in both backends: quarantined releases and pins, durable and fenced (issue 18)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from immutable_sdk.errors import LockLost
from immutable_sdk.state import sqlite_schema
from immutable_sdk.state.base import Hold, StateStore
from immutable_sdk.state.sqlite import SqliteStateStore

from .conftest import T0, OpenStore


def quarantine(release: str, at: float = T0, fleet: str = "web") -> Hold:
    return Hold(
        fleet,
        "quarantine",
        release,
        at,
        rollout=f"ro-{release}",
        reason="health gate failed: cloudwatch-alarm: shop-5xx in ALARM",
        data={"checks": ["cloudwatch-alarm"], "from_release": "r-good"},
    )


def test_holds_round_trip_pin_first_then_quarantines_oldest_first(store: StateStore) -> None:
    store.put_hold(quarantine("r-bad2", T0 + 5))
    store.put_hold(quarantine("r-bad1", T0))
    pin = Hold("web", "pin", "r-good", T0 + 9, rollout="ro-9", data={"from_release": "r-bad2"})
    store.put_hold(pin)
    holds = store.holds("web")
    assert [(h.kind, h.release) for h in holds] == [
        ("pin", "r-good"),
        ("quarantine", "r-bad1"),
        ("quarantine", "r-bad2"),
    ]
    assert holds[0] == pin
    assert holds[1] == quarantine("r-bad1", T0)
    assert store.holds("api") == []


def test_a_fleet_has_one_pin_and_one_quarantine_per_release(store: StateStore) -> None:
    store.put_hold(Hold("web", "pin", "r-a", T0, data={"from_release": "r-b"}))
    store.put_hold(Hold("web", "pin", "r-c", T0 + 1, data={"from_release": "r-d"}))
    store.put_hold(quarantine("r-x", T0))
    store.put_hold(quarantine("r-x", T0 + 3))
    assert [(h.kind, h.release, h.at) for h in store.holds("web")] == [
        ("pin", "r-c", T0 + 1),
        ("quarantine", "r-x", T0 + 3),
    ]


def test_drop_holds_by_kind_and_release_returns_what_went(store: StateStore) -> None:
    store.put_hold(quarantine("r-1"))
    store.put_hold(quarantine("r-2", T0 + 1))
    store.put_hold(Hold("web", "pin", "r-0", T0))
    assert [h.release for h in store.drop_holds("web", "quarantine", "r-2")] == ["r-2"]
    assert store.drop_holds("web", "quarantine", "r-9") == []
    assert [h.release for h in store.drop_holds("web", "pin")] == ["r-0"]
    assert [(h.kind, h.release) for h in store.holds("web")] == [("quarantine", "r-1")]


def test_holds_are_per_project_and_seen_by_other_store_objects(open_store: OpenStore) -> None:
    shop, other, again = open_store("shop"), open_store("other"), open_store("shop")
    shop.put_hold(quarantine("r-1"))
    assert other.holds("web") == []
    assert [h.release for h in again.holds("web")] == ["r-1"]


def test_a_hold_written_after_losing_the_lock_is_refused(open_store: OpenStore) -> None:
    old, new = open_store(), open_store()
    old.acquire_lock("web", "old:1:a", 60, T0)
    new.force_unlock("web")
    with pytest.raises(LockLost):
        old.put_hold(quarantine("r-1"))
    assert new.holds("web") == []
    new.put_hold(quarantine("r-2"))  # nobody fences new: an operator's write
    with pytest.raises(LockLost):
        old.drop_holds("web", "quarantine")
    assert [h.release for h in new.holds("web")] == ["r-2"]


def test_an_unknown_hold_kind_is_refused(store: StateStore) -> None:
    from immutable_sdk.errors import StateError

    with pytest.raises(StateError, match="unknown hold kind 'veto'"):
        store.put_hold(Hold("web", "veto", "r-1", T0))


def test_a_version_2_file_is_migrated_keeping_its_data(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    sqlite_schema.create_private(path)
    with sqlite3.connect(path, isolation_level=None) as db:
        for version in (1, 2):
            sqlite_schema.MIGRATIONS[version](db)
        db.execute("INSERT INTO meta VALUES ('schema_version', '2')")
        db.execute(
            "INSERT INTO releases VALUES ('shop', 'web', 'r-1', 1, '{}', '{}', ?, NULL)", (T0,)
        )
    with SqliteStateStore(path, "shop") as store:
        assert [r.release for r in store.releases("web")] == ["r-1"]
        store.put_hold(quarantine("r-1"))
        assert [h.release for h in store.holds("web")] == ["r-1"]
