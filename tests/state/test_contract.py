"""The StateStore contract, run against both backends (SQLite file, DynamoDB on moto)."""

from __future__ import annotations

import threading
from types import MappingProxyType

import pytest

from immutable_sdk.errors import LockHeld, LockLost, StateError
from immutable_sdk.lifecycle import Phase
from immutable_sdk.state.base import LockInfo, StateStore

from .conftest import T0, OpenStore, rollout

# -- locks ----------------------------------------------------------------------------------------


def test_acquire_a_free_lock(store: StateStore) -> None:
    info = store.acquire_lock("web", "host:1:a", 60, T0)
    assert info == LockInfo("web", "host:1:a", T0, T0 + 60, 1)
    assert store.get_lock("web") == info
    assert store.get_lock("api") is None


def test_a_held_lock_refuses_another_owner_naming_holder_since_and_expiry(
    store: StateStore,
) -> None:
    store.acquire_lock("web", "host:1:a", 60, T0)
    with pytest.raises(LockHeld) as caught:
        store.acquire_lock("web", "host:2:b", 60, T0 + 30)
    err = caught.value
    assert (err.fleet, err.owner, err.since, err.lease_until) == ("web", "host:1:a", T0, T0 + 60)
    message = str(err)
    assert "host:1:a" in message
    assert "2027-01-15T08:00:00+00:00" in message  # since (T0)
    assert "2027-01-15T08:01:00+00:00" in message  # lease expiry
    assert store.get_lock("web") == LockInfo("web", "host:1:a", T0, T0 + 60, 1)


def test_the_owner_reacquires_keeping_since_and_extending_the_lease(store: StateStore) -> None:
    store.acquire_lock("web", "host:1:a", 60, T0)
    info = store.acquire_lock("web", "host:1:a", 60, T0 + 50)
    assert info == LockInfo("web", "host:1:a", T0, T0 + 110, 1)
    assert store.get_lock("web") == info


def test_an_expired_lease_is_taken_over_but_not_a_moment_before(store: StateStore) -> None:
    store.acquire_lock("web", "host:1:a", 60, T0)
    with pytest.raises(LockHeld):
        store.acquire_lock("web", "host:2:b", 60, T0 + 60)  # lease_until == now: still held
    info = store.acquire_lock("web", "host:2:b", 60, T0 + 60.5)
    assert info == LockInfo("web", "host:2:b", T0 + 60.5, T0 + 120.5, 2)
    assert store.get_lock("web") == info


def test_renew_extends_the_owners_lease(store: StateStore) -> None:
    store.acquire_lock("web", "host:1:a", 60, T0)
    info = store.renew_lock("web", "host:1:a", 60, T0 + 40)
    assert info == LockInfo("web", "host:1:a", T0, T0 + 100, 1)
    with pytest.raises(LockHeld):
        store.acquire_lock("web", "host:2:b", 60, T0 + 90)


def test_renew_after_a_takeover_raises_lock_lost_naming_the_new_holder(
    store: StateStore,
) -> None:
    store.acquire_lock("web", "host:1:a", 60, T0)
    store.acquire_lock("web", "host:2:b", 60, T0 + 61)
    with pytest.raises(LockLost, match=r"no longer held by host:1:a; host:2:b holds it since"):
        store.renew_lock("web", "host:1:a", 60, T0 + 62)
    assert store.get_lock("web") == LockInfo("web", "host:2:b", T0 + 61, T0 + 121, 2)


def test_renew_of_a_removed_lock_raises_lock_lost(store: StateStore) -> None:
    store.acquire_lock("web", "host:1:a", 60, T0)
    store.force_unlock("web")
    with pytest.raises(LockLost, match="nobody holds it"):
        store.renew_lock("web", "host:1:a", 60, T0 + 1)
    assert store.get_lock("web") is None


def test_release_only_by_the_owner(store: StateStore) -> None:
    store.acquire_lock("web", "host:1:a", 60, T0)
    assert store.release_lock("web", "host:2:b") is False
    assert store.get_lock("web") is not None
    assert store.release_lock("web", "host:1:a") is True
    assert store.get_lock("web") is None
    assert store.release_lock("web", "host:1:a") is False
    store.acquire_lock("web", "host:2:b", 60, T0 + 1)  # free again


def test_force_unlock_returns_what_it_removed(store: StateStore) -> None:
    held = store.acquire_lock("web", "host:1:a", 60, T0)
    assert store.force_unlock("web") == held
    assert store.get_lock("web") is None
    assert store.force_unlock("web") is None


def test_locks_are_per_fleet_and_per_project(open_store: OpenStore) -> None:
    shop, blog = open_store("shop"), open_store("blog")
    shop.acquire_lock("web", "host:1:a", 60, T0)
    shop.acquire_lock("api", "host:2:b", 60, T0)
    blog.acquire_lock("web", "host:3:c", 60, T0)
    assert shop.get_lock("web").owner == "host:1:a"  # type: ignore[union-attr]
    assert blog.get_lock("web").owner == "host:3:c"  # type: ignore[union-attr]
    assert blog.force_unlock("web") is not None
    assert shop.get_lock("web") is not None


def test_two_store_objects_see_one_lock(open_store: OpenStore) -> None:
    first, second = open_store(), open_store()
    first.acquire_lock("web", "host:1:a", 60, T0)
    with pytest.raises(LockHeld):
        second.acquire_lock("web", "host:2:b", 60, T0 + 1)


def test_threads_racing_for_a_lock_have_one_winner(open_store: OpenStore) -> None:
    stores = [open_store() for _ in range(6)]
    winners: list[str] = []
    losers: list[str] = []
    barrier = threading.Barrier(len(stores))

    def race(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            stores[i].acquire_lock("web", f"host:{i}:x", 60, T0)
            winners.append(f"host:{i}:x")
        except LockHeld as exc:
            losers.append(exc.owner)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(winners) == 1
    assert losers == [winners[0]] * (len(stores) - 1)
    assert stores[0].get_lock("web").owner == winners[0]  # type: ignore[union-attr]


# -- rollouts -------------------------------------------------------------------------------------


def test_a_rollout_round_trips(store: StateStore) -> None:
    record = rollout(
        from_release=None,
        owner="host:1:a",
        steps=({"kind": "launch", "count": 2, "slot": None}, {"kind": "gate", "slot": None}),
        data=MappingProxyType({"plan": {"action": "replace", "reasons": ["ami"]}, "note": ""}),
    )
    store.start_rollout(record)
    got = store.get_rollout("r-1")
    assert got is not None
    assert got == rollout(
        from_release=None,
        owner="host:1:a",
        steps=({"kind": "launch", "count": 2, "slot": None}, {"kind": "gate", "slot": None}),
        data={"plan": {"action": "replace", "reasons": ["ami"]}, "note": ""},
    )
    assert store.get_rollout("r-2") is None


def test_starting_a_rollout_id_twice_is_refused(store: StateStore) -> None:
    store.start_rollout(rollout())
    with pytest.raises(StateError, match="rollout 'r-1' already exists"):
        store.start_rollout(rollout(started_at=T0 + 5))
    assert len(store.rollouts()) == 1


def test_update_changes_fields_and_returns_the_record(store: StateStore) -> None:
    store.start_rollout(rollout(error="flaky"))
    updated = store.update_rollout("r-1", phase=Phase.SHIFTING, data={"batch": 1})
    assert (updated.phase, updated.data, updated.error) == ("shifting", {"batch": 1}, "flaky")
    done = store.update_rollout(
        "r-1", phase="promoted", outcome="promoted", finished_at=T0 + 300, error=None
    )
    assert done.outcome == "promoted" and done.finished_at == T0 + 300 and done.error is None
    assert store.get_rollout("r-1") == done
    assert done.to_release == "rel-b" and done.started_at == T0  # untouched fields stay


def test_update_refuses_unknown_fields_and_rollouts(store: StateStore) -> None:
    store.start_rollout(rollout())
    with pytest.raises(TypeError, match="cannot change fleet"):
        store.update_rollout("r-1", fleet="api")
    with pytest.raises(StateError, match="no rollout 'r-9'"):
        store.update_rollout("r-9", phase="failed")


def test_rollouts_are_listed_newest_first(store: StateStore) -> None:
    store.start_rollout(rollout("r-1", "web", T0))
    store.start_rollout(rollout("r-2", "api", T0 + 10))
    store.start_rollout(rollout("r-3", "web", T0 + 20))
    store.start_rollout(rollout("r-4", "api", T0 + 30))
    assert [r.id for r in store.rollouts()] == ["r-4", "r-3", "r-2", "r-1"]
    assert [r.id for r in store.rollouts("web")] == ["r-3", "r-1"]
    assert [r.id for r in store.rollouts(limit=3)] == ["r-4", "r-3", "r-2"]
    assert [r.id for r in store.rollouts("api", limit=1)] == ["r-4"]
    assert store.rollouts(limit=0) == []
    assert store.rollouts("db") == []


def test_rollouts_are_per_project(open_store: OpenStore) -> None:
    shop, blog = open_store("shop"), open_store("blog")
    shop.start_rollout(rollout("r-1"))
    blog.start_rollout(rollout("r-1", started_at=T0 + 1))  # the same id in another project
    assert [r.started_at for r in shop.rollouts()] == [T0]
    assert blog.get_rollout("r-1").started_at == T0 + 1  # type: ignore[union-attr]


def test_fleets_are_those_that_had_a_rollout_in_the_project(open_store: OpenStore) -> None:
    shop, blog = open_store("shop"), open_store("blog")
    assert shop.fleets() == []
    shop.start_rollout(rollout("r-1", "web", T0))
    shop.start_rollout(rollout("r-2", "web@eu-west-1", T0 + 1))
    shop.start_rollout(rollout("r-3", "api", T0 + 2))
    shop.start_rollout(rollout("r-4", "web", T0 + 3))
    blog.start_rollout(rollout("r-1", "posts", T0))
    assert shop.fleets() == ["api", "web", "web@eu-west-1"]
    assert blog.fleets() == ["posts"]


def test_unfinished_rollout_is_the_newest_without_an_outcome(store: StateStore) -> None:
    assert store.unfinished_rollout("web") is None
    store.start_rollout(rollout("r-1", "web", T0))
    store.start_rollout(rollout("r-2", "web", T0 + 10))
    store.start_rollout(rollout("r-3", "api", T0 + 20))
    assert store.unfinished_rollout("web").id == "r-2"  # type: ignore[union-attr]
    store.update_rollout("r-2", outcome="promoted", phase="promoted", finished_at=T0 + 15)
    assert store.unfinished_rollout("web").id == "r-1"  # type: ignore[union-attr]
    store.update_rollout("r-1", outcome="failed", phase="failed", finished_at=T0 + 16)
    assert store.unfinished_rollout("web") is None
    assert store.unfinished_rollout("api").id == "r-3"  # type: ignore[union-attr]


# -- journal --------------------------------------------------------------------------------------


def test_journal_entries_are_numbered_in_order_per_rollout(store: StateStore) -> None:
    store.start_rollout(rollout("r-1"))
    store.start_rollout(rollout("r-2", started_at=T0 + 1))
    first = store.append_journal("r-1", 0, "started", T0 + 1, {})
    store.append_journal("r-2", -1, "note", T0 + 2, {"text": "other rollout"})
    store.append_journal("r-1", 0, "finished", T0 + 5, {"instances": ["i-1", "i-2"]})
    store.append_journal("r-1", 1, "failed", T0 + 3, {"error": "gate timed out"})
    assert (first.seq, first.rollout, first.status) == (1, "r-1", "started")
    entries = store.journal("r-1")
    assert [(e.seq, e.step_index, e.status, e.at) for e in entries] == [
        (1, 0, "started", T0 + 1),
        (2, 0, "finished", T0 + 5),
        (3, 1, "failed", T0 + 3),
    ]
    assert entries[1].data == {"instances": ["i-1", "i-2"]}
    assert [e.seq for e in store.journal("r-2")] == [1]
    assert store.journal("r-9") == []


def test_journal_of_an_unknown_rollout_is_refused(store: StateStore) -> None:
    with pytest.raises(StateError, match="no rollout 'r-9'"):
        store.append_journal("r-9", 0, "started", T0, {})


def test_concurrent_journal_writers_get_distinct_sequence_numbers(open_store: OpenStore) -> None:
    open_store().start_rollout(rollout())
    stores = [open_store() for _ in range(4)]

    def write(i: int) -> None:
        for n in range(5):
            stores[i].append_journal("r-1", i, "note", T0 + n, {"writer": i, "n": n})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    entries = stores[0].journal("r-1")
    assert [e.seq for e in entries] == list(range(1, 21))
    for i in range(len(stores)):  # each writer's entries stay in its own order
        assert [e.data["n"] for e in entries if e.data["writer"] == i] == list(range(5))


# -- releases -------------------------------------------------------------------------------------


def test_releases_are_numbered_per_fleet_and_listed_newest_first(store: StateStore) -> None:
    a = store.record_release("web", "rel-a", {"amis": {"us-east-1": "ami-1"}}, {"t": 1}, T0)
    b = store.record_release("web", "rel-b", {"amis": {"us-east-1": "ami-2"}}, {}, T0 + 1, "r-1")
    c = store.record_release("api", "rel-a", {}, {}, T0 + 2)
    assert (a.seq, b.seq, c.seq) == (1, 2, 1)
    assert b.rollout == "r-1" and a.rollout is None
    assert [r.release for r in store.releases("web")] == ["rel-b", "rel-a"]
    assert store.get_release("web", "rel-a") == a
    assert a.artifact == {"amis": {"us-east-1": "ami-1"}} and a.launch_config == {"t": 1}
    assert store.get_release("web", "rel-z") is None
    assert store.releases("db") == []


def test_recording_a_release_again_returns_the_first_record(store: StateStore) -> None:
    first = store.record_release("web", "rel-a", {"image": "web"}, {"t": 1}, T0)
    store.record_release("web", "rel-b", {}, {}, T0 + 1)
    again = store.record_release("web", "rel-a", {"image": "other"}, {"t": 2}, T0 + 9)
    assert again == first
    assert [r.seq for r in store.releases("web")] == [2, 1]


def test_concurrent_release_writers_get_distinct_sequence_numbers(open_store: OpenStore) -> None:
    stores = [open_store() for _ in range(4)]

    def write(i: int) -> None:
        for n in range(3):
            stores[i].record_release("web", f"rel-{i}-{n}", {}, {}, T0)
            stores[i].record_release("web", "rel-shared", {"by": i}, {}, T0)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    records = stores[0].releases("web")
    assert sorted(r.seq for r in records) == list(range(1, 14))
    assert len({r.release for r in records}) == 13


# -- signals --------------------------------------------------------------------------------------


def test_signals_are_taken_once_oldest_first(store: StateStore) -> None:
    store.start_rollout(rollout("r-1"))
    store.start_rollout(rollout("r-2", started_at=T0 + 1))
    store.send_signal("r-1", "abort", T0 + 20)
    store.send_signal("r-1", "promote", T0 + 10)
    store.send_signal("r-2", "promote", T0 + 10)
    assert store.take_signals("r-1") == ["promote", "abort"]
    assert store.take_signals("r-1") == []
    assert store.take_signals("r-2") == ["promote"]


def test_a_signal_to_an_unknown_rollout_is_refused(store: StateStore) -> None:
    with pytest.raises(StateError, match="no rollout 'r-9'"):
        store.send_signal("r-9", "promote", T0)


def test_concurrent_takers_never_share_a_signal(open_store: OpenStore) -> None:
    sender = open_store()
    sender.start_rollout(rollout())
    for n in range(12):
        sender.send_signal("r-1", f"s{n}", T0 + n)
    stores = [open_store() for _ in range(4)]
    taken: list[list[str]] = [[] for _ in stores]

    def take(i: int) -> None:
        for _ in range(3):
            taken[i].extend(stores[i].take_signals("r-1"))

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    everything = [name for names in taken for name in names]
    assert sorted(everything) == sorted(f"s{n}" for n in range(12))


def test_rollouts_started_at_one_clock_reading_list_in_the_order_they_started(
    store: StateStore,
) -> None:
    """An operator's rollback and the next apply can start within one second (always, on a
    virtual clock): the one started last is the newest, whatever its random id says."""
    from immutable_sdk.core.rollout.deployer import start_rollout
    from immutable_sdk.plugin import Artifact, RolloutInfo
    from immutable_sdk.release import Release

    artifact = Artifact(image="web", builder="ami", digest="d", amis={"us-east-1": "ami-1"})
    started = []
    for n, rid in enumerate(["ro-1-fff", "ro-1-000", "ro-1-aaa"]):  # ids that sort otherwise
        release = Release("web", f"r-{n}", {"image_id": "ami-1"}, artifact)
        info = RolloutInfo(rid, store.project, "web", "rolling", None, release.id)
        store.acquire_lock("web", "me", 60, T0)
        start_rollout(store, info, release, [], "me", T0)
        store.update_rollout(rid, outcome="promoted", phase=Phase.PROMOTED.value)
        started.append(rid)
    assert [r.id for r in store.rollouts("web")] == started[::-1]
    times = [r.started_at for r in store.rollouts("web")]
    assert times == sorted(times, reverse=True) and len(set(times)) == 3


def test_apply_records_are_written_replaced_and_the_latest_read_back(store: StateStore) -> None:
    from immutable_sdk.state.base import ApplyRecord

    assert store.latest_apply() is None
    first = ApplyRecord("ap-1", "d1", 10.0, 10.0, {"units": {"web": {"outcome": "waiting"}}})
    store.put_apply(first)
    assert store.latest_apply() == first
    ticked = ApplyRecord("ap-1", "d1", 10.0, 20.0, {"units": {"web": {"outcome": "promoted"}}})
    store.put_apply(ticked)  # the next tick of the same plan: the same record, updated
    assert store.latest_apply() == ticked
    other = ApplyRecord("ap-2", "d2", 30.0, 30.0, {"wave_bakes": {"web": {"until": 90.0}}})
    store.put_apply(other)
    assert store.latest_apply() == other
