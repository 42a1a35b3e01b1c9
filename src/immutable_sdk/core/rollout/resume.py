"""Resuming or aborting a rollout that did not finish.

A rollout is unfinished when it has no outcome: its process was killed, interrupted, or lost
its lock. The next ``apply`` on the fleet takes the lock (once the lease expired) and finishes
the job from what AWS actually runs, read back through two sources:

* the journal: instances that passed a gate (``gated``: they count as healthy capacity) and
  instances that a retire had begun to take out (``retiring``: already out of traffic);
* AWS itself, through the tags every instance of a fleet carries (docs/design.md, section 6).

``reconcile`` then brings the fleet to a state that the strategy can plan from:

1. it waits for instances still coming (a killed launch left the desired capacity high);
2. it finishes the retirements the journal shows begun, and terminates instances of the
   rollout's releases that no Auto Scaling group holds (a killed retire detached them);
3. it retires instances that cannot count as healthy and that the rollout would not keep:
   neither gated, nor of the trusted release, nor of the target (launched for a target that
   the spec no longer wants). Finishing a rollback, it also retires the instances of the
   restored release that an earlier attempt launched and that never passed the rollback's
   gate (their gate may have failed): the rollback launches and gates fresh ones. None of them
   counts as healthy capacity, so ``min_healthy`` holds throughout.

The strategy re-plans from what runs (``RolloutChange.target_instances`` counts instances
already on the target), and instances of the target that never passed a gate are gated before
anything counts on them (``resume_steps``). Suspended processes, the group's bounds and an unused
launch template version are put right by the rollout's ordinary end (or its rollback).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...aws import orphans
from ...aws.fleet import GroupState
from ...errors import (
    AwsError,
    GateFailed,
)
from ...lifecycle import (
    STEP_TYPES,
    Gate,
    Launch,
    Step,
    step_from_dict,
)
from ...state.base import (
    JournalEntry,
    LockInfo,
    RolloutRecord,
    StateStore,
)
from ...units import format_duration
from .runner import POLL_FLOOR, Resumed, RolloutRunner

if TYPE_CHECKING:
    pass

UNFINISHED_SCAN = 50  # newest rollouts of a fleet searched for unfinished ones


def unfinished(state: StateStore, fleet: str) -> list[RolloutRecord]:
    """The fleet's rollouts without an outcome, newest first (normally none or one)."""
    newest = state.unfinished_rollout(fleet)
    if newest is None:
        return []
    others = [
        r
        for r in state.rollouts(fleet, limit=UNFINISHED_SCAN)
        if r.outcome is None and r.id != newest.id
    ]
    return [newest, *others]


@dataclass
class Carried:
    """What the journals of unfinished rollouts hand on to the process that resumes them."""

    gated: set[str] = field(default_factory=set)
    retiring: set[str] = field(default_factory=set)  # begun, not journaled as done
    launched: set[str] = field(default_factory=set)  # by the rollouts, journaled as done
    last_index: int = -1  # highest step index journaled in the newest rollout
    # instances that served before the rollouts began (None: not journaled, an old journal)
    original: set[str] | None = None

    @classmethod
    def read(cls, state: StateStore, rollouts: Sequence[RolloutRecord]) -> Carried:
        carried = cls()
        retired: set[str] = set()
        for n, record in enumerate(rollouts):
            for entry in state.journal(record.id):
                data = entry.data
                carried.gated |= set(_ids(data.get("gated")))
                carried.retiring |= set(_ids(data.get("retiring")))
                carried.launched |= set(_ids(data.get("launched_before")))
                if "original" in data:
                    carried.original = (carried.original or set()) | set(_ids(data["original"]))
                if entry.status == "finished":
                    retired |= set(_ids(data.get("retired")))
                    carried.launched |= set(_ids(data.get("launched")))
                if n == 0:
                    carried.last_index = max(carried.last_index, entry.step_index)
        carried.retiring -= retired
        return carried

    def next_index(self, record: RolloutRecord) -> int:
        """Where the resumed rollout's journal goes on: after its planned and journaled steps."""
        return max(len(record.steps), self.last_index + 1)

    def to_note(self) -> dict[str, Any]:
        note: dict[str, Any] = {
            "gated": sorted(self.gated),
            "retiring": sorted(self.retiring),
            "launched_before": sorted(self.launched),
        }
        if self.original is not None:
            note["original"] = sorted(self.original)
        return note

    def originals(self) -> set[str] | None:
        """A copy of ``original`` for a runner (None: the runner works it out itself)."""
        return None if self.original is None else set(self.original)


def _ids(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return []


def settle(runner: RolloutRunner) -> GroupState:
    """Wait until every live member is in service and the group holds its desired capacity."""
    clock = runner.ctx.clock
    health = runner.fleet.health
    start = clock.monotonic()
    delay = POLL_FLOOR
    while True:
        group = runner.observe()
        live = group.live()
        coming = [m for m in live if m.lifecycle_state != "InService"]
        if not coming and len(live) >= group.desired:
            return group
        elapsed = clock.monotonic() - start
        if elapsed >= health.timeout:
            raise GateFailed(
                f"instances launched by the interrupted rollout did not come in service within "
                f"{format_duration(health.timeout)} ({len(live)} of {group.desired} live)",
                details={m.instance_id: m.lifecycle_state for m in coming},
                checks=("launch",),
            )
        runner.wait(min(delay, health.timeout - elapsed))
        delay = min(delay * 2, health.interval)


def reconcile(
    runner: RolloutRunner, carried: Carried, releases: Iterable[str | None]
) -> GroupState | None:
    """Bring the fleet to a state the strategy can plan from (see the module docstring).

    Journals what it did as a ``reconciled`` note; returns the group afterwards (None if the
    fleet has no group).
    """
    api, fleet = runner.api, runner.fleet.name
    done: dict[str, list[str]] = {"retired": [], "terminated": []}
    group = api.describe_one(fleet)
    if group is not None:
        group = settle(runner)
        members = {m.instance_id for m in group.live()}
        begun = sorted(carried.retiring & members)
        if begun:  # a killed retire: some may have left their target groups already
            tgs = group.target_groups
            registered = sorted(api.still_registered(tgs, begun)) if tgs else []
            runner.retire_instances(begun, tgs, registered=registered)
            done["retired"] += begun
    stray = orphans.outside_groups(
        api, fleet, releases=releases, ids=carried.retiring - set(done["retired"])
    )
    if stray:
        runner.note(terminating=stray)
        orphans.terminate(api, stray)
        done["terminated"] = stray
    if group is not None:
        group = runner.observe()
        keep = {runner.trusted, runner.target}
        doomed = [
            m.instance_id
            for m in group.live()
            if (m.release not in keep or runner.rolling_back) and not runner.proven(m.instance_id)
        ]
        if doomed:
            runner.retire_instances(doomed, group.target_groups)
            done["retired"] += doomed
            group = runner.observe()
    runner.note(note="reconciled", **done)
    runner.ctx.emit("rollout.reconciled", **done)
    return group


def resume_steps(
    steps: Sequence[Step], group: GroupState | None, runner: RolloutRunner
) -> list[Step]:
    """The re-planned steps, with a gate first when instances of the target that never passed
    one are running, unless the plan gates them at once anyway (a launch and its gate)."""
    if group is None:
        return list(steps)
    ungated = [m for m in group.of_release(runner.target) if not runner.proven(m.instance_id)]
    if not ungated:
        return list(steps)
    if len(steps) >= 2 and isinstance(steps[0], Launch) and isinstance(steps[1], Gate):
        return list(steps)
    # The grace period runs from now: they may have been launched just before the crash.
    runner.last_launch = runner.ctx.clock.monotonic()
    return [Gate(), *steps]


# Steps a rollout goes on with where it stopped: they change nothing on AWS while they run
# (a wait, a gate's polls), so what AWS runs is what the step before left.
CONTINUABLE = ("bake", "pause", "gate", "analysis")
STEP_STATUSES = ("started", "finished", "failed")


def continuation(state: StateStore, record: RolloutRecord) -> tuple[Resumed, list[Step]] | None:
    """Where ``record`` goes on, step by step, when it stopped inside a step that changes
    nothing (``CONTINUABLE``): a reconcile tick suspended it there, or its process died
    there. The step goes on from its journaled start (a bake or pause keeps its deadline, a
    gate its start and timeout), then the rest of the rollout's planned steps. None when it
    stopped elsewhere (a launch, a retire, between steps): that is repaired and re-planned
    from what AWS runs (``reconcile``, ``resume_steps``)."""
    journal = state.journal(record.id)
    last = next(
        (e for e in reversed(journal) if e.step_index >= 0 and e.status in STEP_STATUSES), None
    )
    if last is None or last.status != "started" or last.step_index >= len(record.steps):
        return None
    if record.steps[last.step_index].get("kind") not in CONTINUABLE:
        return None
    index = last.step_index
    waits = [e for e in journal if e.step_index == index and e.data.get("note") == "waiting"]
    waiting = dict(waits[-1].data) if waits else {}
    steps = [step_from_dict(s) for s in record.steps[last.step_index :]]
    return Resumed(last.step_index, last.at, waiting), steps


def take_over(
    state: StateStore,
    rollout: str,
    pending: Sequence[RolloutRecord],
    carried: Carried,
    owner: str,
    now: float,
    how: str,
    **extra: Any,
) -> None:
    """Journal that ``rollout`` takes the unfinished ``pending`` over (``how``: resumed,
    superseded, aborted), with what their journals hand on, then close the others."""
    note = {"note": how, "owner": owner, "rollouts": [r.id for r in pending], **extra}
    state.append_journal(rollout, -1, "note", now, {**note, **carried.to_note()})
    supersede(state, pending, rollout, now, how)


def supersede(
    state: StateStore, records: Iterable[RolloutRecord], by: str, now: float, how: str
) -> None:
    """Close unfinished rollouts that rollout ``by`` takes over (``how``: resumed, aborted)."""
    for record in records:
        if record.id != by:
            state.update_rollout(
                record.id,
                outcome="superseded",
                finished_at=now,
                error=f"unfinished; {how} by rollout {by}",
            )


def drop_unused_versions(
    runner: RolloutRunner, releases: Iterable[str], keep: Iterable[str | None]
) -> list[int]:
    """Delete the launch template versions of ``releases`` (targets of rollouts that were
    superseded) that neither the group nor any of its instances uses; returns them.

    Housekeeping after a rollout reached its goal: an AWS error is reported as an event
    (``versions.not_deleted``), never raised. Version 1 is the template's default version,
    which AWS does not delete: it stays.
    """
    unused = set(releases) - set(keep)
    if not unused:
        return []
    api, fleet = runner.api, runner.fleet.name
    versions: list[int] = []
    try:
        group = api.describe_one(fleet)
        unused -= {m.release for m in group.live()} if group else set()
        current = group.version if group else None
        for release in sorted(r for r in unused if r):
            version = api.version_of_release(fleet, release)
            if version is not None and version != 1 and str(version) != current:
                versions.append(version)
        if versions:
            runner.note(deleting_versions=versions)
            api.delete_versions(fleet, versions)
    except AwsError as exc:
        runner.ctx.emit("versions.not_deleted", versions=versions, error=str(exc))
        return []
    return versions


def progress(
    record: RolloutRecord, journal: Sequence[JournalEntry], lock: LockInfo | None, now: float
) -> dict[str, Any]:
    """For ``status``: the unfinished rollout's last step and whether a process still runs it.

    ``running`` is true while a lock on the fleet has a live lease; otherwise the rollout is
    ``resumable``: the next apply resumes it (or ``--abort-unfinished`` rolls it back).
    """
    steps = {e.step_index: e.data for e in journal if e.status == "started"}
    last = next(  # a step's own transitions, not the shifts journaled at its index
        (
            e
            for e in reversed(journal)
            if e.step_index >= 0 and e.status in ("started", "finished", "failed")
        ),
        None,
    )
    last_step = None
    if last is not None:
        data = steps.get(last.step_index) or {}
        text = ""
        if data.get("kind") in STEP_TYPES:
            text = step_from_dict(data).describe()
        last_step = {
            "index": last.step_index,
            "kind": data.get("kind"),
            "text": text,
            "status": last.status,
            "at": last.at,
        }
    running = lock is not None and lock.lease_until >= now
    interrupted = next(
        (e.data.get("reason") for e in reversed(journal) if e.data.get("note") == "interrupted"),
        None,
    )
    # a reconcile tick left it waiting: for what, and until when (None: an operator)
    wait = journal[-1].data if journal and journal[-1].data.get("note") == "waiting" else None
    waiting = None
    if wait is not None:
        waiting = {
            "for": wait.get("for"),
            "since": wait.get("since"),
            "until": wait.get("until"),
            "next_at": wait.get("next_at"),
        }
    return {
        "last_step": last_step,
        "waits": waiting,
        "running": running,
        "resumable": not running,
        "owner": record.owner,
        "interrupted": interrupted,
    }
