"""Each journaled transition is notified once, whichever process journals it.

Every "process" has its own state store handle (SQLite file or DynamoDB on the moto server),
its own plugin manager and its own webhook notifier; the receiver is a real HTTP server on
127.0.0.1 that counts deliveries per ``Idempotency-Key``. Separate OS processes race too.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from immutable_sdk_webhook.notifier import Settings, WebhookNotifier

from immutable_sdk.core.transitions import (
    ROLLOUT_FINISHED,
    ROLLOUT_LEVEL,
    ROLLOUT_STARTED,
    event_id,
    journal_and_notify,
)
from immutable_sdk.lifecycle import Gate, Launch
from immutable_sdk.plugin import RolloutInfo
from immutable_sdk.plugins import load_plugins
from immutable_sdk.state.base import RolloutRecord, StateStore
from immutable_sdk.state.sqlite import SqliteStateStore

T0 = 1_800_000_000.0
INFO = RolloutInfo("ro-1", "shop", "web", "rolling", "rel-a", "rel-b")


class Process:
    """What one process has: a store handle, a plugin manager with a webhook notifier."""

    def __init__(self, store: StateStore, url: str) -> None:
        self.store = store
        self.plugins = load_plugins(autoload=False)
        self.notifier = WebhookNotifier(Settings(url))
        self.plugins.manager.register(self.notifier, name="webhook")

    def transition(self, index: int, status: str, notify: str, **arguments: Any) -> bool:
        entry = journal_and_notify(
            self.store, self.plugins.hook, INFO, index, status, T0, {}, notify, **arguments
        )
        return entry.appended

    def close(self) -> None:
        self.notifier.close()


def delivered(server: Any) -> Counter[str]:
    return Counter(r.headers["Idempotency-Key"] for r in server.received)


def start(store: StateStore) -> None:
    store.start_rollout(
        RolloutRecord(INFO.id, "web", "rolling", "rel-a", "rel-b", "replacing", started_at=T0)
    )


def test_processes_journaling_the_same_transition_notify_it_once(
    open_state_store: Callable[[], StateStore], endpoint: Any
) -> None:
    server = endpoint()
    start(open_state_store())
    processes = [Process(open_state_store(), server.url) for _ in range(5)]
    barrier = threading.Barrier(len(processes))
    wrote: list[bool] = []

    def finish_step(process: Process) -> None:
        barrier.wait()
        step = Gate()
        wrote.append(
            process.transition(
                2, "finished", "immutable_sdk_step_finished", step=step, outcome="ok"
            )
        )

    threads = [threading.Thread(target=finish_step, args=(p,)) for p in processes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for p in processes:
        p.close()
    assert sorted(wrote) == [False] * 4 + [True]
    assert delivered(server) == {event_id(INFO.id, 2, "finished"): 1}
    (body,) = [json.loads(r.body) for r in server.received]
    assert (body["event"], body["event_id"]) == ("step_finished", "ro-1/2/finished")


def test_a_resumed_rollout_does_not_send_earlier_transitions_again(
    open_state_store: Callable[[], StateStore], endpoint: Any
) -> None:
    server = endpoint()
    store = open_state_store()
    start(store)
    first = Process(store, server.url)
    launch, gate = Launch(count=2), Gate()
    first.transition(ROLLOUT_LEVEL, ROLLOUT_STARTED, "immutable_sdk_rollout_started")
    first.transition(0, "started", "immutable_sdk_step_started", step=launch)
    first.transition(0, "finished", "immutable_sdk_step_finished", step=launch, outcome="ok")
    first.transition(1, "started", "immutable_sdk_step_started", step=gate)
    first.close()  # the process is gone in the middle of step 1

    # Another process replays the rollout from its journal: every transition again, in order.
    second = Process(open_state_store(), server.url)
    replayed = [
        second.transition(ROLLOUT_LEVEL, ROLLOUT_STARTED, "immutable_sdk_rollout_started"),
        second.transition(0, "started", "immutable_sdk_step_started", step=launch),
        second.transition(0, "finished", "immutable_sdk_step_finished", step=launch, outcome="ok"),
        second.transition(1, "started", "immutable_sdk_step_started", step=gate),
        second.transition(1, "finished", "immutable_sdk_step_finished", step=gate, outcome="ok"),
        second.transition(
            ROLLOUT_LEVEL, ROLLOUT_FINISHED, "immutable_sdk_rollout_finished", outcome="promoted"
        ),
    ]
    second.close()
    assert replayed == [False, False, False, False, True, True]
    counts = delivered(server)
    assert set(counts.values()) == {1}
    assert list(counts) == [
        "ro-1/-1/rollout_started",
        "ro-1/0/started",
        "ro-1/0/finished",
        "ro-1/1/started",
        "ro-1/1/finished",
        "ro-1/-1/rollout_finished",
    ]
    assert second.notifier.stats.events == 2  # only what it journaled itself reached it


def _racer(path: str, url: str, ready: Any, go: Any, results: Any) -> None:
    """One OS process: its own SQLite connection, plugin manager and notifier."""
    process = Process(SqliteStateStore(Path(path), "shop"), url)
    ready.release()
    go.wait()
    wrote = process.transition(
        ROLLOUT_LEVEL, ROLLOUT_FINISHED, "immutable_sdk_rollout_finished", outcome="promoted"
    )
    process.close()
    results.put(wrote)


def test_os_processes_racing_notify_once(tmp_path: Path, endpoint: Any) -> None:
    server = endpoint()
    path = tmp_path / "state.db"
    with SqliteStateStore(path, "shop") as store:
        start(store)
    spawn = multiprocessing.get_context("spawn")
    ready, go, results = spawn.Semaphore(0), spawn.Event(), spawn.Queue()
    racers = [
        spawn.Process(target=_racer, args=(str(path), server.url, ready, go, results))
        for _ in range(3)
    ]
    for r in racers:
        r.start()
    for _ in racers:
        assert ready.acquire(timeout=60)
    go.set()
    for r in racers:
        r.join(timeout=60)
        assert r.exitcode == 0
    assert sorted(results.get(timeout=5) for _ in racers) == [False, False, True]
    assert delivered(server) == {"ro-1/-1/rollout_finished": 1}
