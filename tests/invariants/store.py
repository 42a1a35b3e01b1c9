"""A state store that notes every write accepted from a process that did not hold the lock.

Invariant 3: at most one process writes a fleet's journal at any moment, the lock's holder.
``WatchedStore`` wraps one process's store (any StateStore: it forwards every attribute) and,
for each journal, rollout and release write the store *accepted*, compares the writer with the
lock's owner as the store saw it just before. A store that fences its writes (an epoch checked
in the same transaction) refuses the stale writer instead: nothing is noted then.
"""

from __future__ import annotations

from typing import Any

# Writes that belong to a fleet's rollout, and how to find the fleet from their arguments.
ROLLOUT_WRITES = ("append_journal", "update_rollout")  # first argument: the rollout id
FLEET_WRITES = ("record_release",)  # first argument: the fleet


class WatchedStore:
    def __init__(self, inner: Any, owner: str, violations: list[str]) -> None:
        self._inner = inner
        self._owner = owner
        self._violations = violations

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name == "start_rollout":
            return self._watch(
                name, value, lambda args, kw: (args[0] if args else kw["record"]).fleet
            )
        if name in ROLLOUT_WRITES:
            return self._watch(name, value, self._fleet_of_rollout)
        if name in FLEET_WRITES:
            return self._watch(name, value, lambda args, kw: args[0] if args else kw["fleet"])
        return value

    def _fleet_of_rollout(self, args: tuple[Any, ...], kw: dict[str, Any]) -> str | None:
        rollout = args[0] if args else kw.get("rollout")
        record = self._inner.get_rollout(rollout)
        return None if record is None else str(record.fleet)

    def _watch(self, name: str, write: Any, fleet_of: Any) -> Any:
        def watched(*args: Any, **kw: Any) -> Any:
            fleet = fleet_of(args, kw)
            lock = self._inner.get_lock(fleet) if fleet else None
            result = write(*args, **kw)  # refused (LockLost, a fenced write): nothing to note
            holder = lock.owner if lock else None
            if fleet and holder != self._owner:
                what = _describe(name, args, kw)
                self._violations.append(
                    f"invariant 3 (one writer): {self._owner} wrote {what} to fleet {fleet!r} "
                    f"while the lock was {'held by ' + holder if holder else 'free'}"
                )
            return result

        return watched

    def __enter__(self) -> WatchedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.close()


def _describe(name: str, args: tuple[Any, ...], kw: dict[str, Any]) -> str:
    if name == "append_journal" and len(args) >= 3:
        return f"journal entry (step {args[1]}, {args[2]})"
    if name == "update_rollout":
        return f"rollout update {sorted(kw)}"
    return name.replace("_", " ")
