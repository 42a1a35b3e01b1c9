"""Fencing epochs, on both backends: every write of a lock holder is checked against the lock in
the write itself, so a holder whose lock was force-unlocked or taken over writes nothing more.

Two store objects on the same data behave as two processes would (see conftest)."""

from __future__ import annotations

import pytest

from immutable_sdk.errors import LockLost
from immutable_sdk.state.base import StateStore

from .conftest import T0, OpenStore, rollout


def test_the_epoch_grows_with_every_new_owner_takeover_and_forced_unlock(
    open_store: OpenStore,
) -> None:
    a, b = open_store(), open_store()
    first = a.acquire_lock("web", "host:1:a", 60, T0)
    again = a.acquire_lock("web", "host:1:a", 60, T0 + 10)  # its own lock: the same epoch
    taken = b.acquire_lock("web", "host:2:b", 60, T0 + 200)  # expired lease taken over
    assert (first.epoch, again.epoch, taken.epoch) == (1, 1, 2)
    removed = a.force_unlock("web")
    assert removed is not None and removed.epoch == 2
    assert b.get_lock("web") is None
    after = a.acquire_lock("web", "host:1:a", 60, T0 + 201)
    assert after.epoch == 4  # the forced unlock used 3: never back, although the row went
    assert b.release_lock("web", "host:2:b") is False
    assert a.release_lock("web", "host:1:a") is True
    assert b.acquire_lock("web", "host:2:b", 60, T0 + 202).epoch == 5
    assert a.get_lock("api") is None
    assert a.acquire_lock("api", "host:1:a", 60, T0).epoch == 1  # per fleet


def test_epochs_are_per_project(open_store: OpenStore) -> None:
    shop, blog = open_store("shop"), open_store("blog")
    shop.acquire_lock("web", "host:1:a", 60, T0)
    shop.force_unlock("web")
    assert blog.acquire_lock("web", "host:1:a", 60, T0).epoch == 1


def holder_with_a_rollout(open_store: OpenStore) -> tuple[StateStore, StateStore]:
    old, new = open_store(), open_store()
    old.acquire_lock("web", "host:1:old", 60, T0)
    old.record_release("web", "rel-b", {"image": "web"}, {}, T0)
    old.start_rollout(rollout("r-1", "web", T0, owner="host:1:old"))
    old.append_journal("r-1", 0, "started", T0 + 1, {"kind": "launch"})
    new.send_signal("r-1", "promote", T0 + 2)  # an operator's, from another process
    return old, new


WRITES = {
    "journal": lambda s: s.append_journal("r-1", 0, "finished", T0 + 5, {"ids": ["i-1"]}),
    "update": lambda s: s.update_rollout("r-1", phase="promoted", outcome="promoted"),
    "start": lambda s: s.start_rollout(rollout("r-2", "web", T0 + 5)),
    "release": lambda s: s.record_release("web", "rel-c", {"image": "web"}, {}, T0 + 5),
    "renew": lambda s: s.renew_lock("web", "host:1:old", 60, T0 + 5),
    "signals": lambda s: s.take_signals("r-1"),
}


@pytest.mark.parametrize("how", ["force-unlock", "force-unlock-and-takeover", "takeover"])
@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_stale_holders_write_is_refused_and_writes_nothing(
    open_store: OpenStore, write: str, how: str
) -> None:
    old, new = holder_with_a_rollout(open_store)
    if how.startswith("force-unlock"):
        new.force_unlock("web")
    if how != "force-unlock":
        new.acquire_lock("web", "host:2:new", 60, T0 + 100)  # past the old lease in "takeover"
    before = (new.get_rollout("r-1"), new.journal("r-1"), new.releases("web"), new.rollouts())
    with pytest.raises(LockLost) as lost:
        WRITES[write](old)
    assert new.take_signals("r-1") == ["promote"]  # still there, for the new owner
    message = str(lost.value)
    assert "'web'" in message and "host:1:old" in message and "epoch 1" in message
    assert ("host:2:new" in message) == (how != "force-unlock")
    after = (new.get_rollout("r-1"), new.journal("r-1"), new.releases("web"), new.rollouts())
    assert after == before
    lock = new.get_lock("web")
    assert lock is None if how == "force-unlock" else lock.owner == "host:2:new"  # type: ignore[union-attr]


def test_the_new_holder_writes_and_the_old_one_stays_refused(open_store: OpenStore) -> None:
    old, new = holder_with_a_rollout(open_store)
    new.force_unlock("web")
    new.acquire_lock("web", "host:2:new", 60, T0 + 10)
    new.append_journal("r-1", -1, "note", T0 + 11, {"note": "taken over"})
    new.update_rollout("r-1", owner="host:2:new")
    for write in WRITES.values():
        with pytest.raises(LockLost):
            write(old)
    assert [e.data for e in new.journal("r-1")] == [{"kind": "launch"}, {"note": "taken over"}]
    assert new.get_rollout("r-1").owner == "host:2:new"  # type: ignore[union-attr]
    assert old.release_lock("web", "host:1:old") is False  # never frees the new owner's lock
    assert new.get_lock("web").owner == "host:2:new"  # type: ignore[union-attr]


def test_writes_after_a_release_are_not_fenced(open_store: OpenStore) -> None:
    """Only a held (or lost) lock fences: after its release the store writes as anyone does."""
    old, other = holder_with_a_rollout(open_store)
    assert old.release_lock("web", "host:1:old") is True
    other.acquire_lock("web", "host:2:b", 60, T0 + 1)
    old.append_journal("r-1", -1, "note", T0 + 2, {"note": "after release"})
    assert len(other.journal("r-1")) == 2


def test_fences_are_per_fleet(open_store: OpenStore) -> None:
    old, new = open_store(), open_store()
    old.acquire_lock("web", "host:1:old", 60, T0)
    old.acquire_lock("api", "host:1:old", 60, T0)
    old.start_rollout(rollout("r-api", "api", T0))
    new.force_unlock("web")
    old.append_journal("r-api", 0, "started", T0 + 1, {})  # api's lock is still ours
    old.renew_lock("api", "host:1:old", 60, T0 + 2)
    with pytest.raises(LockLost):
        old.renew_lock("web", "host:1:old", 60, T0 + 2)


def test_journal_entries_carry_their_writers_epoch(open_store: OpenStore) -> None:
    _, new = holder_with_a_rollout(open_store)
    new.force_unlock("web")
    new.acquire_lock("web", "host:2:new", 60, T0 + 10)
    new.append_journal("r-1", -1, "note", T0 + 11, {"note": "taken over"})
    reader = open_store()
    reader.append_journal("r-1", -1, "note", T0 + 12, {"note": "no lock"})
    assert [e.epoch for e in reader.journal("r-1")] == [1, 3, None]


def test_a_fleet_in_another_region_is_fenced_under_its_unit_key(open_store: OpenStore) -> None:
    from immutable_sdk.state.regional import RegionalState

    old = RegionalState(open_store(), "eu-west-1")
    person = open_store()
    held = old.acquire_lock("web", "host:1:old", 60, T0)
    assert (held.fleet, held.epoch) == ("web@eu-west-1", 1)
    old.start_rollout(rollout("r-eu", "web", T0))
    old.append_journal("r-eu", 0, "started", T0 + 1, {})
    removed = person.force_unlock("web@eu-west-1")
    assert removed is not None and removed.epoch == 1
    with pytest.raises(LockLost, match="web@eu-west-1"):
        old.append_journal("r-eu", 0, "finished", T0 + 2, {})
    with pytest.raises(LockLost):
        old.record_release("web", "rel-x", {}, {}, T0 + 2)
    assert [e.epoch for e in person.journal("r-eu")] == [1]
