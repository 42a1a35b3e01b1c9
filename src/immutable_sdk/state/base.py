"""The StateStore contract: fleet locks with leases, rollout journal, release history.

Everything is scoped by the spec's project ``name``. Times are the clock's epoch seconds, passed
in by the caller so that a virtual clock governs leases too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

SCHEMA_VERSION = 4  # 2: fencing epochs on fleet locks; 3: holds (quarantine, pins); 4: apply
# records, gate progress, image builds, unique journal transitions


@dataclass(frozen=True)
class LockInfo:
    fleet: str
    owner: str  # "host:pid:random"
    acquired_at: float
    lease_until: float
    # The fencing token: grows on every acquisition by a new owner, takeover and forced
    # unlock, and never goes back (the store keeps the counter when a lock row goes).
    epoch: int = 0


@dataclass(frozen=True)
class ReleaseRecord:
    """One immutable version of a fleet: (artifact, launch configuration)."""

    fleet: str
    release: str  # content digest of artifact + launch configuration
    seq: int  # 1, 2, 3... per fleet, assigned by the store
    artifact: Mapping[str, Any]  # Artifact fields (image, builder, digest, amis, lineage)
    launch_config: Mapping[str, Any]  # what the launch template version holds
    created_at: float
    rollout: str | None = None


@dataclass(frozen=True)
class RolloutRecord:
    id: str
    fleet: str
    strategy: str
    from_release: str | None
    to_release: str
    phase: str  # lifecycle.Phase value
    started_at: float
    finished_at: float | None = None
    outcome: str | None = None  # promoted | rolled_back | failed | None while running
    error: str | None = None
    owner: str | None = None
    steps: tuple[Mapping[str, Any], ...] = ()  # the planned steps (Step.to_dict)
    data: Mapping[str, Any] = field(default_factory=dict)  # anything else worth keeping


@dataclass(frozen=True)
class JournalEntry:
    rollout: str
    seq: int  # order of writes within the rollout, assigned by the store
    step_index: int  # index into RolloutRecord.steps; -1 for rollout-level entries
    status: str  # started | finished | failed | note
    at: float
    data: Mapping[str, Any] = field(default_factory=dict)  # ids created, counts, errors
    epoch: int | None = None  # the lock epoch of the writer; None when written without a lock
    # False when ``append_journal`` found this transition journaled already and wrote nothing:
    # the entry is the one written first (whose process notified it). Never stored.
    appended: bool = field(default=True, compare=False)


# Journal statuses of which a rollout step (or the rollout, index -1) has at most one: a
# second append of the same (rollout, step_index, status) writes nothing. "note" entries repeat.
REPEATABLE_STATUSES = frozenset({"note"})


@dataclass(frozen=True)
class SavedGateProgress:
    """A suspended gate's or bake's progress, saved per rollout and step index.

    ``progress`` is what ``core.rollout.gate_progress`` saves (the checks' snapshots, the
    gate's start); ``epoch`` the lock epoch of the writer (None without a lock)."""

    rollout: str
    step_index: int
    progress: Mapping[str, Any]
    saved_at: float
    epoch: int | None = None


BUILD_RUNNING = "running"
BUILD_DONE = "done"
BUILD_FAILED = "failed"


@dataclass(frozen=True)
class BuildRecord:
    """An image build that outlasts the process that started it (EC2 Image Builder).

    Keyed by image name and digest: any process that wants the same image finds the build
    running and polls it instead of starting another. ``handle`` is the builder's (JSON: the
    build version ARN, ...); ``attempt`` counts builds of this digest (a failed one is retried
    as the next attempt); ``result`` holds the artifact once done, or the reason once failed.
    ``recorded`` is False when ``record_build`` kept a running build that was there first."""

    image: str
    digest: str
    attempt: int
    status: str  # BUILD_RUNNING | BUILD_DONE | BUILD_FAILED
    handle: Mapping[str, Any]
    started_at: float
    updated_at: float
    result: Mapping[str, Any] = field(default_factory=dict)
    recorded: bool = field(default=True, compare=False)


@dataclass(frozen=True)
class ApplyRecord:
    """One plan as applied, tick after tick (``apply``, ``reconcile``): ``digest`` names the
    desired state (each unit's release, the waves); ``data`` holds the waves, each unit's
    outcome and rollout id (``units``), and each wave bake's start and deadline
    (``wave_bakes``). A later tick of the same plan updates the same record."""

    id: str
    digest: str
    started_at: float
    updated_at: float
    data: Mapping[str, Any] = field(default_factory=dict)


HOLD_KINDS = ("quarantine", "pin")


@dataclass(frozen=True)
class Hold:
    """An operator-facing decision that outlives the rollout that made it (see holds.py).

    ``quarantine``: ``release`` failed its gates (or was aborted) in ``rollout``; apply does
    not roll it out again until ``apply --retry-failed``. ``data``: ``checks`` (the checks
    that failed), ``from_release``. A fleet may have several quarantined releases.

    ``pin``: ``immutable-sdk rollback`` returned the fleet to ``release``; apply leaves it
    there until ``unpin`` or until the spec wants another release than ``data.from_release``
    (the one rolled back from). At most one pin per fleet.
    """

    fleet: str
    kind: str  # one of HOLD_KINDS
    release: str
    at: float
    rollout: str | None = None
    reason: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def slot(self) -> str:
        """The hold's key within its fleet: one pin, one quarantine per release."""
        return self.kind if self.kind == "pin" else f"{self.kind}#{self.release}"


class StateStore(Protocol):
    """The state of one project.

    Fencing: a store object that took a fleet's lock (``acquire_lock``) remembers the lock's
    epoch, and from then on every write it makes for that fleet (lock renewal, rollout start
    and update, journal append, release record) is checked against the lock in the same
    transaction (SQLite) or condition expression (DynamoDB): once the lock was force-unlocked
    or taken over, the write is refused with LockLost and nothing is written. ``release_lock``
    ends the fencing of a fleet. Use one store object per process (as the engine does).
    """

    project: str

    # locks
    def acquire_lock(self, fleet: str, owner: str, lease: float, now: float) -> LockInfo:
        """Take the fleet's lock: free, expired, or already ours. Raises LockHeld otherwise.

        A new owner gets a higher epoch than any before; an owner that holds the lock already
        keeps its epoch. The store fences this fleet's later writes with the epoch returned.
        """

    def renew_lock(self, fleet: str, owner: str, lease: float, now: float) -> LockInfo:
        """Extend our lease. Raises LockLost when the lock is no longer ours (another owner,
        or another epoch than the one this store object took)."""

    def release_lock(self, fleet: str, owner: str) -> bool:
        """Release the lock if ``owner`` holds it; False otherwise (nothing changes)."""

    def force_unlock(self, fleet: str) -> LockInfo | None:
        """Remove any lock on the fleet (people only); returns what was removed.

        The epoch still grows, so the removed holder's writes are refused from now on."""

    def get_lock(self, fleet: str) -> LockInfo | None: ...

    # rollouts and journal
    def start_rollout(self, record: RolloutRecord) -> None: ...

    def update_rollout(self, rollout: str, **changes: Any) -> RolloutRecord:
        """Change fields of a rollout (phase, outcome, error, finished_at, data)."""

    def get_rollout(self, rollout: str) -> RolloutRecord | None: ...

    def rollouts(self, fleet: str | None = None, limit: int = 50) -> list[RolloutRecord]:
        """Newest first."""

    def unfinished_rollout(self, fleet: str) -> RolloutRecord | None:
        """The fleet's newest rollout without an outcome, if any."""

    def fleets(self) -> list[str]:
        """Every fleet (unit key) that has had a rollout, sorted."""

    def append_journal(
        self, rollout: str, step_index: int, status: str, at: float, data: Mapping[str, Any]
    ) -> JournalEntry:
        """Append an entry. A status other than ``note`` is a transition: at most one per
        (rollout, step_index, status). Appending one that is there already writes nothing
        and returns the entry written first, with ``appended`` False (its writer notified
        it: see ``core.transitions``)."""

    def journal(self, rollout: str) -> list[JournalEntry]:
        """Oldest first."""

    # gate progress (a gate or bake suspended by one process, resumed by another)
    def save_gate_progress(
        self, rollout: str, step_index: int, progress: Mapping[str, Any], at: float
    ) -> SavedGateProgress:
        """Store (replace) the progress of step ``step_index``'s gate; fenced like a journal
        append (LockLost once the rollout's fleet lock is no longer this store's)."""

    def gate_progress(self, rollout: str, step_index: int) -> SavedGateProgress | None:
        """The progress last saved for the step's gate, if any."""

    # image builds that outlast a process (keyed by image name and digest, not fenced)
    def record_build(
        self, image: str, digest: str, attempt: int, handle: Mapping[str, Any], at: float
    ) -> BuildRecord:
        """Record a started build. When a build of the same image and digest is recorded
        ``running`` already, nothing is written and that one is returned (``recorded``
        False): the caller polls it. A finished or failed record is replaced."""

    def finish_build(
        self,
        image: str,
        digest: str,
        attempt: int,
        status: str,
        result: Mapping[str, Any],
        at: float,
    ) -> BuildRecord | None:
        """Mark attempt ``attempt`` done or failed with ``result``; None (nothing written)
        when the record is of another attempt or gone."""

    def get_build(self, image: str, digest: str) -> BuildRecord | None: ...

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
        """Record a release (idempotent: the same release id returns the existing record)."""

    def releases(self, fleet: str) -> list[ReleaseRecord]:
        """Newest first."""

    def get_release(self, fleet: str, release: str) -> ReleaseRecord | None: ...

    # operator signals (promote, abort) for a running rollout, from any process
    def send_signal(self, rollout: str, name: str, at: float) -> None: ...

    def take_signals(self, rollout: str) -> list[str]:
        """Signals sent to the rollout and not yet taken, oldest first; taking removes them."""

    # apply records: a plan's progress across ticks (not fenced: no fleet's lock covers it)
    def put_apply(self, record: ApplyRecord) -> None:
        """Write (or replace, by id) the apply record."""

    def latest_apply(self) -> ApplyRecord | None:
        """The most recently updated apply record, if any."""

    # holds: quarantined releases and pins (operator decisions that apply respects)
    def put_hold(self, hold: Hold) -> None:
        """Record ``hold``, replacing the fleet's hold with the same ``slot`` (its one pin,
        or the quarantine of the same release). Fenced like every write for the fleet."""

    def holds(self, fleet: str) -> list[Hold]:
        """The fleet's holds, pin first, then quarantines oldest first."""

    def drop_holds(self, fleet: str, kind: str, release: str | None = None) -> list[Hold]:
        """Remove the fleet's holds of ``kind`` (only ``release``'s, when given); returns
        what was removed."""

    def close(self) -> None: ...
