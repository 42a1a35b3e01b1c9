"""A gate's or bake's progress, saved when a tick suspends it and restored by a later tick.

A check of health-check contract version 2 (``plugin.StatefulHealthCheck``: the ``http``
check's streaks, the ``elb`` check's failed-poll counts) hands its state between polls to
``snapshot()``; ``GateProgress.save`` stores the snapshots of every check of the gate in the
state store (fenced by the fleet's lock epoch), with when the gate began and how many polls it
made. ``GateProgress.restore`` gives fresh check objects (``GateRunner.checks()``: a new
process makes new ones) their snapshots back before their first poll, so the gate judges its
next poll as the uninterrupted gate would have.

A version-1 check (``check`` only) has nothing to save: it starts afresh after a resume, as
it did before contract version 2. So does a check whose snapshot no longer fits: another
check class under the name (the spec changed), or one its ``restore`` refuses (ValueError).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import PluginError
from ...plugin import HealthCheck, StatefulHealthCheck
from ...state.base import StateStore
from ...state.records import to_json

FORMAT = 1  # of the saved progress; a newer one is not restored (the gate starts afresh)

Checks = Sequence[tuple[str, HealthCheck]]


def _kind(check: HealthCheck) -> str:
    cls = type(check)
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass(frozen=True)
class GateProgress:
    """What a suspended gate or bake had done: its start (clock epoch seconds), its polls so
    far, and per check (by the gate's name for it) the check's class and snapshot."""

    started_at: float | None = None
    polls: int = 0
    checks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    restored: tuple[str, ...] = ()  # after ``restore``: the checks that got their state back

    @classmethod
    def of(cls, checks: Checks, *, started_at: float | None = None, polls: int = 0) -> GateProgress:
        """The progress of ``checks`` now (version-1 checks contribute nothing)."""
        saved: dict[str, Mapping[str, Any]] = {}
        for name, check in checks:
            if not isinstance(check, StatefulHealthCheck):
                continue
            try:
                snapshot = dict(check.snapshot())
                to_json(snapshot)  # must be storable: fail here, naming the check
            except Exception as exc:
                raise PluginError(name, f"health check snapshot() failed: {exc!r}") from exc
            saved[name] = {"kind": _kind(check), "state": snapshot}
        return cls(started_at, polls, saved)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "started_at": self.started_at,
            "polls": self.polls,
            "checks": {n: dict(c) for n, c in self.checks.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateProgress | None:
        """None for progress this version cannot read (a newer format)."""
        if data.get("format") != FORMAT:
            return None
        checks = data.get("checks")
        started = data.get("started_at")
        return cls(
            started_at=float(started) if isinstance(started, (int, float)) else None,
            polls=int(data.get("polls", 0)),
            checks=dict(checks) if isinstance(checks, Mapping) else {},
        )

    @staticmethod
    def save(
        state: StateStore,
        rollout_id: str,
        index: int,
        checks: Checks,
        *,
        at: float,
        started_at: float | None = None,
        polls: int = 0,
    ) -> GateProgress:
        """Store the progress of step ``index``'s gate (replacing what was saved before);
        LockLost when the fleet's lock is no longer this store's."""
        progress = GateProgress.of(checks, started_at=started_at, polls=polls)
        state.save_gate_progress(rollout_id, index, progress.to_dict(), at)
        return progress

    @staticmethod
    def restore(
        state: StateStore, rollout_id: str, index: int, checks: Checks
    ) -> GateProgress | None:
        """Give ``checks`` (fresh, not polled yet) the state saved for step ``index``'s gate;
        the progress read (``restored`` names the checks that took their state back), or None
        when nothing was saved."""
        saved = state.gate_progress(rollout_id, index)
        if saved is None:
            return None
        progress = GateProgress.from_dict(saved.progress)
        if progress is None:
            return None
        restored: list[str] = []
        for name, check in checks:
            entry = progress.checks.get(name)
            if entry is None or not isinstance(check, StatefulHealthCheck):
                continue
            if entry.get("kind") != _kind(check) or not isinstance(entry.get("state"), Mapping):
                continue
            try:
                check.restore(entry["state"])
            except ValueError:
                continue  # a snapshot it no longer understands: start afresh
            except Exception as exc:
                raise PluginError(name, f"health check restore() failed: {exc!r}") from exc
            restored.append(name)
        return GateProgress(progress.started_at, progress.polls, progress.checks, tuple(restored))
