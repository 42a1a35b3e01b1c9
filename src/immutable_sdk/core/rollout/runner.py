"""Running a rollout's steps on one fleet: launch, gate, retire, bake, pause.

The runner journals each step before and after it runs, fires the lifecycle hooks, emits a
``capacity`` event after every observation (healthy in-service instances by release), renews
the fleet's lock lease from every wait, and waits only through the clock with capped backoff.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as replace_state
from typing import Any

from ...aws.fleet import FleetApi, GroupState, Member
from ...aws.session import aws_errors
from ...errors import (
    Aborted,
    GateFailed,
    Interrupted,
    LockLost,
    RolloutFailed,
    UsageError,
)
from ...lifecycle import (
    Bake,
    Gate,
    Launch,
    Pause,
    Retire,
    Step,
)
from ...plugin import GateTargets, HealthReport, RolloutInfo
from ...plugins import Plugins
from ...spec.model import FleetSpec
from ...state.base import StateStore
from ..context import Context
from ..tick.horizon import OPERATOR, Suspended
from ..transitions import journal_and_notify
from .gate import GateRunner, restoring
from .gate_progress import GateProgress
from .locks import LockKeeper as LockKeeper  # re-exported: callers import it from here
from .samples import Samples
from .wording import step_text

POLL_FLOOR = 1.0  # seconds: the first wait of a backoff
SIGNAL_POLL = 5.0  # seconds between looks at operator signals during a pause


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def new_rollout_id(now: float) -> str:
    return f"ro-{int(now)}-{secrets.token_hex(3)}"


def to_replace(
    group: GroupState, target: str, replace: frozenset[str] = frozenset()
) -> list[Member]:
    """Live members a rollout to ``target`` replaces: not on it, or named in ``replace``."""
    return [m for m in group.live() if m.release != target or m.instance_id in replace]


def capacity_bounds(desired: int, steps: Sequence[Step], start: int) -> tuple[int, int]:
    """The lowest and highest desired capacity the steps pass through, from ``start``."""
    low = high = current = start
    for step in steps:
        if isinstance(step, Launch):
            current += step.count
        elif isinstance(step, Retire):
            current -= step.count
        low, high = min(low, current), max(high, current)
    return max(0, min(low, desired)), max(high, desired)


@dataclass(frozen=True)
class Resumed:
    """Where a suspended rollout goes on: step ``index`` of its plan, begun at ``started_at``
    (epoch seconds), with what its last tick journaled about the wait (``waiting``)."""

    index: int
    started_at: float
    waiting: dict[str, Any] = field(default_factory=dict)


@dataclass
class RolloutRunner:
    fleet: FleetSpec
    plugins: Plugins
    ctx: Context
    api: FleetApi
    state: StateStore
    info: RolloutInfo
    heartbeat: LockKeeper | None = None
    target: str = ""  # the release being rolled out (or restored)
    trusted: str | None = None  # the release whose in-service instances count as healthy
    gated: set[str] = field(default_factory=set)
    launched: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    index: int = 0  # journal step index (continues across forward and rollback steps)
    last_launch: float | None = None  # clock.monotonic() when the last launch completed
    # Instances of the trusted release present at the first observation: they served before
    # the rollout and count as healthy; anything launched since counts once it passed a gate.
    original: set[str] | None = None
    launched_before: set[str] = field(default_factory=set)  # by this rollout, in a killed run
    # Instances to replace although they are on the target release (drift fix, recycle).
    replace: frozenset[str] = frozenset()
    current: int = -1  # journal index of the step running now (-1: between steps)
    rolling_back: bool = False  # restoring the previous release: an abort has nothing to undo
    # Returning to a known-good release (a rollback, ``immutable-sdk rollback``): gates judge
    # only the instances' own health (gate.restoring), never the signal that failed the release.
    restoring: bool = False
    desired: int | None = None  # the capacity the rollout aims for (rollout_desired)
    _drain: float | None = None
    _signals: list[str] = field(default_factory=list)  # operator signals taken, not yet used
    _abort_checked: float | None = None  # clock.monotonic() of the last look for an abort
    # The last read of the group while nothing has changed it since (no wait, no mutating
    # call whose effect was not applied to it): steps start from it instead of reading again.
    _group: GroupState | None = None
    samples: Samples = field(default_factory=Samples)  # what the report draws (samples.py)
    # A retire followed by a launch of as many instances detaches without lowering the desired
    # capacity: the group launches the replacements, and the launch step only waits for them.
    _relaunch: int = 0  # instances the next step (a Launch) takes over from this retire
    _relaunched: tuple[frozenset[str], int] | None = None  # (target members before, desired)
    # A step a tick suspended (or a crashed run left waiting), continued by this runner:
    # its journal index, when it started (clock.now()) and its last ``waiting`` note.
    resumed: Resumed | None = None
    _step_started: float = 0.0  # clock.now() when the current step started (or was resumed)
    _continued: bool = False  # the current step is one an earlier tick or process began

    # --- plumbing ---------------------------------------------------------------------------

    def capacity(self) -> int:
        """The desired capacity to end with: the rollout's, else the spec's."""
        return self.fleet.capacity.desired if self.desired is None else self.desired

    def beat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat()

    def wait(self, seconds: float, waiting_for: str = "instances") -> None:
        """A poll's wait; a reconcile tick whose budget would end first suspends instead
        (``Suspended``: the next tick polls again)."""
        self._group = None  # the group may change while we wait: read it again afterwards
        self.tick()
        self.ctx.horizon.poll(self.ctx.clock, seconds, waiting_for)
        self.ctx.clock.sleep(seconds)
        self.tick()

    def since(self, key: str = "since") -> float:
        """When the current step's wait began (epoch seconds): as an earlier tick journaled
        it, else when the step started."""
        if self._continued and self.resumed is not None:
            value = self.resumed.waiting.get(key)
            if isinstance(value, (int, float)):
                return float(value)
        return self._step_started

    def left(self, seconds: float, key: str = "since") -> float:
        """What is left of a wait of ``seconds`` that began at ``since``: all of it for a
        step this runner began, else until its journaled deadline."""
        if not self._continued:
            return seconds
        return max(0.0, self.since(key) + seconds - self.ctx.clock.now())

    def suspend(self, index: int, exc: Suspended) -> None:
        """Journal a tick's stop at a safe point of step ``index`` (a ``waiting`` note with the
        wait's absolute times) and tell the sink; the lock is released by the caller."""
        self.still_ours()
        data = {"note": "waiting", "for": exc.waiting_for, "next_at": exc.next_at, **exc.detail}
        self.state.append_journal(self.info.id, index, "note", self.ctx.clock.now(), data)
        self.ctx.emit(
            "rollout.waiting",
            index=index,
            waiting_for=exc.waiting_for,
            next_at=exc.next_at,
            **exc.detail,
        )

    def tick(self) -> None:
        """The heartbeat of a wait: the lease and stop requests (``beat``), and every few
        seconds an operator's abort."""
        self.beat()
        now = self.ctx.clock.monotonic()
        if self._abort_checked is None or now - self._abort_checked >= SIGNAL_POLL:
            self._abort_checked = now
            self.check_abort()

    def check_abort(self) -> None:
        if "abort" in self.signals() and not self.rolling_back:
            raise Aborted("aborted by an operator (immutable-sdk abort)")

    def observe(self) -> GroupState:
        """Read the group (one call, plus one for instances not seen before) and emit its
        capacity."""
        group = self.api.describe_one(self.fleet.name)
        if group is None:
            raise RolloutFailed(f"the Auto Scaling group of fleet {self.fleet.name!r} vanished")
        self._group = group
        self.emit_capacity(group)
        return group

    def start_from(self, group: GroupState) -> None:
        """Begin from ``group`` as the caller knows it to be now (read under the fleet's lock
        and changed since only by calls whose effect it carries), instead of reading it."""
        self._group = group
        self.emit_capacity(group)

    def last_group(self) -> GroupState:
        """The group as last read, when nothing can have changed it since; else read it."""
        return self._group if self._group is not None else self.observe()

    def emit_capacity(self, group: GroupState) -> None:
        """A ``capacity`` event: desired, in service and healthy (instances that served before
        the rollout, or passed one of its gates)."""
        live = [m for m in group.live() if m.lifecycle_state == "InService"]
        if self.original is None:
            self.original = {
                m.instance_id for m in group.live() if m.release == self.trusted
            } - self.launched_before
            self.remember_original()
        healthy = [
            m
            for m in live
            if m.health_status == "Healthy"
            and (m.instance_id in self.original or m.instance_id in self.gated)
        ]
        by_release: dict[str, int] = {}
        for m in live:
            by_release[m.release or "?"] = by_release.get(m.release or "?", 0) + 1
        sample = {
            "desired": group.desired,
            "in_service": len(live),
            "healthy": len(healthy),
            "by_release": by_release,
        }
        self.ctx.emit("capacity", **sample)
        self.samples.capacity(self, sample)

    def targets(self) -> GateTargets:
        """Every in-service instance of the release (what a bake watches), read afresh."""
        return self._targets(self.observe(), only_ungated=False)

    def _targets(self, group: GroupState, *, only_ungated: bool) -> GateTargets:
        members = [m for m in group.of_release(self.target) if m.lifecycle_state == "InService"]
        if only_ungated:
            # A gate judges what has not passed one yet: the batch just launched, never the
            # instances that served before the rollout (a rollback's gate judges only what the
            # rollback launched). All of the release when every instance passed before (a gate
            # repeated on resume).
            members = [m for m in members if not self.proven(m.instance_id)] or members
        return GateTargets(
            fleet=self.fleet.name,
            release=self.target,
            instances=[m.target() for m in members],
            target_groups=group.target_groups,
        )

    def remember_original(self) -> None:
        """Journal the instances that served before the rollout: a process that resumes it
        (or its rollback) trusts exactly these, never instances of the same release that a
        killed launch left (a rollback launches the trusted release)."""
        self.still_ours()
        self.state.append_journal(
            self.info.id,
            -1,
            "note",
            self.ctx.clock.now(),
            {"note": "original", "original": sorted(self.original or ())},
        )

    def proven(self, instance_id: str) -> bool:
        """Whether the instance counts as healthy: it passed a gate of this rollout, or it
        served before the rollout (an instance of the trusted release seen at the start)."""
        return instance_id in self.gated or instance_id in (self.original or set())

    # --- steps ------------------------------------------------------------------------------

    def still_ours(self) -> None:
        """Before writing the journal: LockLost if another process took the rollout over (a
        process stopped past its lease may wake in the middle of a step)."""
        if self.heartbeat is not None:
            self.heartbeat.check()

    def note(self, **data: Any) -> None:
        """Journal what the current step is about to do (ids), so a resumer can finish it."""
        self.still_ours()
        self.state.append_journal(self.info.id, self.current, "note", self.ctx.clock.now(), data)

    def signals(self) -> list[str]:
        """Operator signals (promote, abort) sent to this rollout and not used yet."""
        self._signals += self.state.take_signals(self.info.id)
        return self._signals

    def interrupted(self, exc: Interrupted, index: int, *, during: bool) -> Interrupted:
        """Journal a stop at a safe point; the error to raise says how to go on."""
        where = f"{'during' if during else 'before'} step {index + 1}"
        self.state.append_journal(
            self.info.id,
            -1,
            "note",
            self.ctx.clock.now(),
            {"note": "interrupted", "step": index, "during": during, "reason": str(exc)},
        )
        self.ctx.emit("rollout.interrupted", step=index, during=during, reason=str(exc))
        unit = self.ctx.unit(self.fleet.name)
        return Interrupted(
            f"{exc}: rollout {self.info.id} of fleet {unit!r} stopped {where} and "
            "is unfinished; run apply again to resume it, or apply --abort-unfinished "
            f"(or abort --fleet {unit}) to roll it back"
        )

    def run(self, steps: Sequence[Step]) -> None:
        """Run ``steps`` from journal index ``index``; with ``resumed`` set (at that index),
        the first step is one an earlier tick began: it goes on from its journaled wait."""
        hook = self.plugins.hook
        self.samples.context(self)
        for position, step in enumerate(steps):
            following = steps[position + 1] if position + 1 < len(steps) else None
            self._relaunch = (
                following.count if isinstance(step, Retire) and isinstance(following, Launch) else 0
            )
            if not isinstance(step, Launch):
                self._relaunched = None  # only the launch right after a merged retire
            index = self.index
            try:
                self.beat()  # a safe point: stop requests and the lease
            except Interrupted as exc:
                raise self.interrupted(exc, index, during=False) from None
            self.check_abort()
            self.index += 1
            self.current = index
            self._continued = self.resumed is not None and self.resumed.index == index
            if self._continued:
                assert self.resumed is not None
                self._step_started = self.resumed.started_at
                self.ctx.emit("step.resumed", index=index, step=step.to_dict())
            else:
                self._step_started = self.ctx.clock.now()
                text = step_text(step, self.info, rolling_back=self.rolling_back)
                journal_and_notify(  # notified only by the process that journals it (transitions)
                    self.state,
                    hook,
                    self.info,
                    index,
                    "started",
                    self._step_started,
                    step.to_dict(),
                    "immutable_sdk_step_started",
                    step=step,
                )
                self.ctx.emit("step.started", index=index, step=step.to_dict(), text=text)
            try:
                data = self.execute(step)
                self.still_ours()
            except LockLost:
                raise  # the rollout is someone else's now: write nothing more
            except Suspended as exc:
                exc.rollout, exc.step = self.info.id, step.describe()
                exc.releases = (self.info.from_release, self.info.to_release)
                exc.rolling_back = self.rolling_back
                self.suspend(index, exc)
                raise
            except Interrupted as exc:
                raise self.interrupted(exc, index, during=True) from None
            except Exception as exc:
                self.still_ours()
                journal_and_notify(
                    self.state,
                    hook,
                    self.info,
                    index,
                    "failed",
                    self.ctx.clock.now(),
                    {"error": str(exc)},
                    "immutable_sdk_step_finished",
                    step=step,
                    outcome="failed",
                )
                self.ctx.emit("step.finished", index=index, outcome="failed", error=str(exc))
                raise
            self.current = -1
            journal_and_notify(
                self.state,
                hook,
                self.info,
                index,
                "finished",
                self.ctx.clock.now(),
                data,
                "immutable_sdk_step_finished",
                step=step,
                outcome="ok",
            )
            self.ctx.emit("step.finished", index=index, outcome="ok", **data)

    def execute(self, step: Step) -> dict[str, Any]:
        # Plugins call AWS through their own clients: their botocore errors become AwsError
        # here, so a failing step always rolls back instead of escaping as a traceback.
        with aws_errors(f"step {step.kind}"):
            return self._execute(step)

    def _execute(self, step: Step) -> dict[str, Any]:
        if isinstance(step, Launch):
            return self.launch(step.count)
        if isinstance(step, Gate):
            return self.gate()
        if isinstance(step, Retire):
            return self.retire(step.count)
        if isinstance(step, Bake):
            return self.bake(step.seconds)
        if isinstance(step, Pause):
            return self.pause(step)
        raise UsageError(
            f"fleet {self.fleet.name!r}: strategy {self.info.strategy!r} asked for a "
            f"{step.kind!r} step, which needs traffic slots this fleet does not have"
        )

    def gates(self) -> GateRunner:
        health = restoring(self.fleet.health) if self.restoring else self.fleet.health
        return GateRunner(
            health, self.plugins.health_checks, self.ctx, self.tick, horizon=self.ctx.horizon
        )

    def bake(self, seconds: float) -> dict[str, Any]:
        """Watch the checks until the bake's deadline. A tick looks once and suspends until
        the next poll (or the deadline): the bake goes on from its journaled start."""
        left = self.left(seconds)
        if self.ctx.horizon.unlimited:
            self.gates().bake(left, self.targets)
            return {"seconds": seconds}
        self.look_once(self.targets)  # one look, now
        since = self.since()
        until, now = since + seconds, self.ctx.clock.now()
        if now >= until:
            return {"seconds": seconds}
        next_at = min(until, now + self.fleet.health.interval)
        raise Suspended(next_at, "bake", {"since": since, "until": until})

    def launch(self, count: int) -> dict[str, Any]:
        merged, self._relaunched = self._relaunched, None
        if merged is not None:  # the retire before asked the group for these instances
            before, wanted = set(merged[0]), merged[1]
            self.note(launching=count, desired=wanted, with_retire=True)
        else:
            group = self.last_group()
            before = {m.instance_id for m in group.of_release(self.target)}
            wanted = group.desired + count
            self.note(launching=count, desired=wanted)
            self.api.update_group(self.fleet.name, desired=wanted, max_size=max(group.max, wanted))
        self._group = None
        start = self.ctx.clock.monotonic()
        delay = POLL_FLOOR
        while True:
            group = self.observe()
            fresh = [m for m in group.of_release(self.target) if m.instance_id not in before]
            ready = [m for m in fresh if m.lifecycle_state == "InService"]
            if len(ready) >= count:
                ids = [m.instance_id for m in ready[:count]]
                self.launched += ids
                self.last_launch = self.ctx.clock.monotonic()
                return {"launched": ids}
            elapsed = self.ctx.clock.monotonic() - start
            if elapsed >= self.fleet.health.timeout:
                raise GateFailed(
                    f"{len(ready)} of {count} new instance(s) came in service within "
                    f"{self.fleet.health.timeout:g}s",
                    details={m.instance_id: m.lifecycle_state for m in fresh},
                    checks=("launch",),
                )
            self.wait(min(delay, self.fleet.health.timeout - elapsed))
            delay = min(delay * 2, self.fleet.health.interval)

    def health_grace(self) -> None:
        """Wait out what is left of the health check grace period, which runs from the end
        of the last launch, on the runner's clock (a gate an earlier tick began: from when
        it began). A tick suspends until the grace period ends."""
        grace = self.fleet.health.grace
        if not grace:
            return
        if self._continued:
            left = self.left(grace)
        elif self.last_launch is not None:
            left = grace - (self.ctx.clock.monotonic() - self.last_launch)
        else:
            return
        if left <= 0:
            return
        if not self.ctx.horizon.unlimited:
            since = self.since()
            raise Suspended(self.ctx.clock.now() + left, "grace", {"since": since})
        self.ctx.emit("gate.grace", seconds=left)
        self.wait(left)

    def gate_elapsed(self) -> float:
        """Seconds a gate an earlier tick began has polled already (0: a new gate)."""
        if not self._continued or self.resumed is None:
            return 0.0
        began = self.resumed.waiting.get("gate_since")
        if not isinstance(began, (int, float)):
            return 0.0
        return max(0.0, self.ctx.clock.now() - float(began))

    def durable_gate(self, targets: Callable[[], GateTargets]) -> dict[str, HealthReport]:
        """The current step's gate, its checks' streaks outliving the tick: restored when an
        earlier tick began this gate, saved when this tick suspends it (``GateProgress``)."""
        gates = self.gates()
        checks = gates.checks()
        if self._continued:
            GateProgress.restore(self.state, self.info.id, self.current, checks)
        try:
            return gates.gate(targets, checks, elapsed=self.gate_elapsed())
        except Suspended:
            now = self.ctx.clock.now()
            began = now - self.gate_elapsed()
            GateProgress.save(
                self.state, self.info.id, self.current, checks, at=now, started_at=began
            )
            raise

    def look_once(self, targets: Callable[[], GateTargets]) -> None:
        """A tick's one look at the current step's bake. The checks' streaks (an http
        check's bad answers in a row) carry over from the tick before and on to the next
        (``GateProgress``): a bake watched tick by tick judges as one watched in process."""
        gates = self.gates()
        checks = gates.checks()
        if self._continued:
            GateProgress.restore(self.state, self.info.id, self.current, checks)
        gates.bake(0.0, targets, checks)
        now = self.ctx.clock.now()
        GateProgress.save(self.state, self.info.id, self.current, checks, at=now)

    def gate(self) -> dict[str, Any]:
        self.health_grace()
        judged: list[GateTargets] = []

        def targets() -> GateTargets:
            # The first poll starts from the group as the launch left it; later polls (after
            # a wait) read it again, as members may have come or gone.
            group = self.last_group() if not judged else self.observe()
            judged.append(self._targets(group, only_ungated=True))
            return judged[-1]

        reports = self.durable_gate(targets)
        passed = {t.instance_id for t in judged[-1].instances}
        self.gated |= passed
        if self._group is not None:
            self.emit_capacity(self._group)  # the instances just gated count as healthy now
        # "gated" lets a resumed rollout count these instances as healthy capacity.
        return {"checks": {n: r.status.value for n, r in reports.items()}, "gated": sorted(passed)}

    def retire(self, count: int) -> dict[str, Any]:
        group = self.last_group()
        candidates = sorted(
            to_replace(group, self.target, self.replace), key=lambda m: m.launched_at
        )
        chosen = [m.instance_id for m in candidates[:count]]
        if not chosen:
            return {"retired": []}
        if self._relaunch and self._relaunch == len(chosen):
            # The next launch replaces exactly these: the detach keeps the desired capacity
            # and the group launches them (capacity as after a retire then a launch).
            before = frozenset(m.instance_id for m in group.of_release(self.target))
            self.retire_instances(chosen, group.target_groups, replace=True)
            self.emit_capacity(replace_state(group.without(chosen), desired=group.desired))
            self._relaunched = (before, group.desired)
            return {"retired": chosen, "replacements": len(chosen)}
        self.retire_instances(chosen, group.target_groups)
        # Detaching with ShouldDecrementDesiredCapacity did exactly this to the group: the
        # next step starts from it without another read.
        self._group = group.without(chosen)
        self.emit_capacity(self._group)
        return {"retired": chosen}

    def retire_instances(
        self,
        ids: Sequence[str],
        target_groups: Sequence[str],
        *,
        registered: Sequence[str] | None = None,
        replace: bool = False,
    ) -> None:
        """Deregister, drain, detach and terminate ``ids``; journaled first (``retiring``), so
        that a rollout resumed after a crash finishes what was begun. ``registered``: those of
        ``ids`` still in the target groups, when some may have left them already. ``replace``:
        the group launches as many in their place (a resumed rollout finds them coming, as
        after a killed launch)."""
        if replace:
            self.note(retiring=list(ids), replacing=len(ids))
        else:
            self.note(retiring=list(ids))
        self._group = None
        out = list(ids) if registered is None else list(registered)
        if target_groups and out:
            self.api.deregister(target_groups, out)
            self.drain(target_groups, out)
        self.api.detach_and_terminate(self.fleet.name, ids, replace=replace)
        self.retired += ids

    def drain(self, target_groups: Sequence[str], ids: Sequence[str]) -> None:
        """Wait until the targets left their groups, at most the deregistration delay."""
        if self._drain is None:
            self._drain = self.api.deregistration_delay(target_groups)
        start = self.ctx.clock.monotonic()
        delay = POLL_FLOOR
        while self.api.still_registered(target_groups, ids):
            elapsed = self.ctx.clock.monotonic() - start
            if elapsed >= self._drain:
                return
            self.wait(min(delay, self._drain - elapsed))
            delay = min(delay * 2, self.fleet.health.interval)

    def pause(self, step: Pause) -> dict[str, Any]:
        """Wait the pause's time (from its journaled start), or for ``promote`` when manual.
        A tick looks for ``promote`` once and suspends (until the deadline, or an operator)."""
        start = self.ctx.clock.monotonic()
        seconds = self.left(step.seconds)
        if not self._continued:
            self.ctx.emit("rollout.paused", manual=step.manual, seconds=step.seconds)
        if not self.ctx.horizon.unlimited:
            self.check_abort()
            signals = self.signals()
            if "promote" in signals:
                signals.remove("promote")
                return {"promoted_by": "operator"}
            since = self.since()
            if step.manual:
                raise Suspended(None, OPERATOR, {"since": since})
            if seconds <= 0:
                return {"seconds": step.seconds}
            until = since + step.seconds
            raise Suspended(until, "pause", {"since": since, "until": until})
        while True:
            self.check_abort()
            signals = self.signals()
            if "promote" in signals:
                signals.remove("promote")
                return {"promoted_by": "operator"}
            remaining = seconds - (self.ctx.clock.monotonic() - start)
            if not step.manual and remaining <= 0:
                return {"seconds": step.seconds}
            self.wait(SIGNAL_POLL if step.manual else min(SIGNAL_POLL, remaining))
