"""Durable facts for rollouts that outlive a process, on both backends (SQLite, DynamoDB on moto):
journal transitions written at most once, a suspended gate's progress, image builds."""

from __future__ import annotations

import threading

import pytest

from immutable_sdk.errors import LockLost, StateError
from immutable_sdk.state.base import BUILD_DONE, BUILD_FAILED, BUILD_RUNNING, StateStore

from .conftest import T0, OpenStore, rollout

# -- journal transitions --------------------------------------------------------------------------


def test_a_transition_is_journaled_once_and_the_second_append_says_so(store: StateStore) -> None:
    store.start_rollout(rollout())
    first = store.append_journal("r-1", 0, "started", T0, {"n": 1})
    again = store.append_journal("r-1", 0, "started", T0 + 5, {"n": 2})
    assert first.appended and not again.appended
    assert (again.seq, again.at, dict(again.data)) == (first.seq, T0, {"n": 1})
    store.append_journal("r-1", 0, "finished", T0 + 6, {})
    store.append_journal("r-1", 1, "started", T0 + 7, {})
    store.append_journal("r-1", -1, "rollout_finished", T0 + 8, {})
    assert not store.append_journal("r-1", -1, "rollout_finished", T0 + 9, {}).appended
    entries = [(e.step_index, e.status) for e in store.journal("r-1")]
    assert entries == [(0, "started"), (0, "finished"), (1, "started"), (-1, "rollout_finished")]


def test_notes_repeat(store: StateStore) -> None:
    store.start_rollout(rollout())
    assert store.append_journal("r-1", 0, "note", T0, {"a": 1}).appended
    assert store.append_journal("r-1", 0, "note", T0, {"a": 1}).appended
    assert len(store.journal("r-1")) == 2


def test_processes_racing_for_one_transition_write_it_once(open_store: OpenStore) -> None:
    open_store().start_rollout(rollout())
    stores = [open_store() for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    appended: list[bool] = []

    def append(store: StateStore) -> None:
        barrier.wait()
        entry = store.append_journal("r-1", 3, "finished", T0, {})
        appended.append(entry.appended)

    threads = [threading.Thread(target=append, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(appended) == [False] * 5 + [True]
    assert [(e.step_index, e.status) for e in stores[0].journal("r-1")] == [(3, "finished")]


# -- gate progress --------------------------------------------------------------------------------


def test_gate_progress_round_trips_and_is_replaced(open_store: OpenStore) -> None:
    writer = open_store()
    writer.start_rollout(rollout())
    assert writer.gate_progress("r-1", 2) is None
    writer.save_gate_progress(
        "r-1", 2, {"checks": {"http": {"streaks": {"i-1": [1, 0, True]}}}}, T0
    )
    writer.save_gate_progress(
        "r-1", 2, {"checks": {"http": {"streaks": {"i-1": [2, 0, True]}}}}, T0 + 10
    )
    reader = open_store()  # another process
    saved = reader.gate_progress("r-1", 2)
    assert saved is not None
    assert saved.saved_at == T0 + 10
    assert saved.progress == {"checks": {"http": {"streaks": {"i-1": [2, 0, True]}}}}
    assert reader.gate_progress("r-1", 3) is None


def test_gate_progress_of_an_unknown_rollout_is_refused(store: StateStore) -> None:
    with pytest.raises(StateError, match="no rollout"):
        store.save_gate_progress("r-404", 0, {}, T0)


def test_gate_progress_is_fenced_by_the_lock_epoch(open_store: OpenStore) -> None:
    holder = open_store()
    holder.acquire_lock("web", "host:1:a", 60, T0)
    holder.start_rollout(rollout())
    saved = holder.save_gate_progress("r-1", 0, {"n": 1}, T0)
    assert saved.epoch == 1
    open_store().force_unlock("web")
    with pytest.raises(LockLost):
        holder.save_gate_progress("r-1", 0, {"n": 2}, T0 + 1)
    kept = open_store().gate_progress("r-1", 0)
    assert kept is not None and kept.progress == {"n": 1} and kept.epoch == 1


# -- image builds ---------------------------------------------------------------------------------


def test_a_running_build_is_kept_and_found_by_another_process(open_store: OpenStore) -> None:
    first = open_store().record_build("base", "sha256:1", 1, {"arn": "build/1"}, T0)
    assert first.recorded and first.status == BUILD_RUNNING
    other = open_store()
    second = other.record_build("base", "sha256:1", 1, {"arn": "build/2"}, T0 + 1)
    assert not second.recorded
    assert second.handle == {"arn": "build/1"} and second.started_at == T0
    found = other.get_build("base", "sha256:1")
    assert found is not None and found.handle == {"arn": "build/1"}
    assert other.get_build("base", "sha256:2") is None


def test_a_build_ends_done_or_failed_and_a_failed_one_is_replaced(store: StateStore) -> None:
    store.record_build("base", "sha256:1", 1, {"arn": "build/1"}, T0)
    assert store.finish_build("base", "sha256:1", 2, BUILD_FAILED, {}, T0 + 1) is None
    failed = store.finish_build("base", "sha256:1", 1, BUILD_FAILED, {"reason": "boom"}, T0 + 2)
    assert failed is not None and failed.status == BUILD_FAILED
    assert failed.result == {"reason": "boom"} and failed.updated_at == T0 + 2
    retry = store.record_build("base", "sha256:1", 2, {"arn": "build/3"}, T0 + 3)
    assert retry.recorded and retry.attempt == 2
    done = store.finish_build(
        "base", "sha256:1", 2, BUILD_DONE, {"amis": {"us-east-1": "ami-1"}}, T0 + 4
    )
    assert done is not None and done.status == BUILD_DONE
    assert store.get_build("base", "sha256:1") == done
