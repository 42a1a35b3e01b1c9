"""The state of a fleet in another region than the spec's: the same store, ``fleet@region`` keys.

A fleet deployed to several regions is one unit per region, each with its own lock, rollouts
and release history. In the spec's own region the unit's key is the fleet's name (so the state
of single-region specs is unchanged); in any other it is ``fleet@region``. ``RegionalState``
wraps the engine's store for one such region: the deployer, planner and resume code keep asking
about ``web`` and the store keeps ``web@eu-west-1``. Rollout ids are unique in the project, so
rollout-keyed calls (journal, signals) pass through unchanged. Records come back as stored,
naming the unit key, which is what people see and type (``--fleet web@eu-west-1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .base import (
    ApplyRecord,
    BuildRecord,
    Hold,
    JournalEntry,
    LockInfo,
    ReleaseRecord,
    RolloutRecord,
    SavedGateProgress,
    StateStore,
)


class RegionalState:
    """``inner`` with every fleet name ``fleet`` stored as ``fleet@region``."""

    def __init__(self, inner: StateStore, region: str) -> None:
        self.inner = inner
        self.region = region
        self.project = inner.project

    def key(self, fleet: str) -> str:
        return f"{fleet}@{self.region}"

    # locks
    def acquire_lock(self, fleet: str, owner: str, lease: float, now: float) -> LockInfo:
        return self.inner.acquire_lock(self.key(fleet), owner, lease, now)

    def renew_lock(self, fleet: str, owner: str, lease: float, now: float) -> LockInfo:
        return self.inner.renew_lock(self.key(fleet), owner, lease, now)

    def release_lock(self, fleet: str, owner: str) -> bool:
        return self.inner.release_lock(self.key(fleet), owner)

    def force_unlock(self, fleet: str) -> LockInfo | None:
        return self.inner.force_unlock(self.key(fleet))

    def get_lock(self, fleet: str) -> LockInfo | None:
        return self.inner.get_lock(self.key(fleet))

    # rollouts and journal
    def start_rollout(self, record: RolloutRecord) -> None:
        self.inner.start_rollout(replace(record, fleet=self.key(record.fleet)))

    def update_rollout(self, rollout: str, **changes: Any) -> RolloutRecord:
        return self.inner.update_rollout(rollout, **changes)

    def get_rollout(self, rollout: str) -> RolloutRecord | None:
        return self.inner.get_rollout(rollout)

    def rollouts(self, fleet: str | None = None, limit: int = 50) -> list[RolloutRecord]:
        if fleet is not None:
            return self.inner.rollouts(self.key(fleet), limit)
        suffix = f"@{self.region}"
        return [r for r in self.inner.rollouts(None, limit) if r.fleet.endswith(suffix)]

    def unfinished_rollout(self, fleet: str) -> RolloutRecord | None:
        return self.inner.unfinished_rollout(self.key(fleet))

    def fleets(self) -> list[str]:
        suffix = f"@{self.region}"
        return [f.removesuffix(suffix) for f in self.inner.fleets() if f.endswith(suffix)]

    def append_journal(
        self, rollout: str, step_index: int, status: str, at: float, data: Mapping[str, Any]
    ) -> JournalEntry:
        return self.inner.append_journal(rollout, step_index, status, at, data)

    def journal(self, rollout: str) -> list[JournalEntry]:
        return self.inner.journal(rollout)

    # gate progress and image builds (keyed by rollout and image: nothing regional to add)
    def save_gate_progress(
        self, rollout: str, step_index: int, progress: Mapping[str, Any], at: float
    ) -> SavedGateProgress:
        return self.inner.save_gate_progress(rollout, step_index, progress, at)

    def gate_progress(self, rollout: str, step_index: int) -> SavedGateProgress | None:
        return self.inner.gate_progress(rollout, step_index)

    def record_build(
        self, image: str, digest: str, attempt: int, handle: Mapping[str, Any], at: float
    ) -> BuildRecord:
        return self.inner.record_build(image, digest, attempt, handle, at)

    def finish_build(
        self,
        image: str,
        digest: str,
        attempt: int,
        status: str,
        result: Mapping[str, Any],
        at: float,
    ) -> BuildRecord | None:
        return self.inner.finish_build(image, digest, attempt, status, result, at)

    def get_build(self, image: str, digest: str) -> BuildRecord | None:
        return self.inner.get_build(image, digest)

    # releases
    def record_release(
        self,
        fleet: str,
        release: str,
        artifact: Mapping[str, Any],
        launch_config: Mapping[str, Any],
        created_at: float,
        rollout: str | None = None,
    ) -> ReleaseRecord:
        return self.inner.record_release(
            self.key(fleet), release, artifact, launch_config, created_at, rollout
        )

    def releases(self, fleet: str) -> list[ReleaseRecord]:
        return self.inner.releases(self.key(fleet))

    def get_release(self, fleet: str, release: str) -> ReleaseRecord | None:
        return self.inner.get_release(self.key(fleet), release)

    # operator signals
    def send_signal(self, rollout: str, name: str, at: float) -> None:
        self.inner.send_signal(rollout, name, at)

    def take_signals(self, rollout: str) -> list[str]:
        return self.inner.take_signals(rollout)

    # holds
    def put_hold(self, hold: Hold) -> None:
        self.inner.put_hold(replace(hold, fleet=self.key(hold.fleet)))

    def holds(self, fleet: str) -> list[Hold]:
        return self.inner.holds(self.key(fleet))

    def drop_holds(self, fleet: str, kind: str, release: str | None = None) -> list[Hold]:
        return self.inner.drop_holds(self.key(fleet), kind, release)

    def close(self) -> None:
        """Nothing: the engine closes the store this one wraps, once."""

    def put_apply(self, record: ApplyRecord) -> None:
        self.inner.put_apply(record)  # a plan spans every region: one record per project

    def latest_apply(self) -> ApplyRecord | None:
        return self.inner.latest_apply()
