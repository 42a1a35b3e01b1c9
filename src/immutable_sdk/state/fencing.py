"""Fencing tokens: the epochs of the fleet locks a store object holds, and the refusals.

A fleet lock's epoch grows on every acquisition by a new owner, every takeover of an expired
lease and every forced unlock. A store object that took a lock keeps its ``Fence`` (fleet,
owner, epoch) here and attaches it to every later write for that fleet; the backend checks it
in the write's own transaction or condition expression. A process whose lock was removed or
taken over is refused at its next write (LockLost), so it writes nothing more, whatever it
does meanwhile. ``release_lock`` drops the fence; a lost or abandoned lock keeps it, so every
later write of the lost owner keeps being refused.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..errors import LockLost
from .base import LockInfo
from .records import iso


@dataclass(frozen=True)
class Fence:
    """The lock a store object took: fleet key (as stored), owner and epoch."""

    fleet: str
    owner: str
    epoch: int

    def admits(self, current: LockInfo | None) -> bool:
        """Whether the lock as it stands now is still this one."""
        return current is not None and (current.owner, current.epoch) == (self.owner, self.epoch)


class HeldLocks:
    """The fences of one store object, by fleet key; safe to share between threads."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._fences: dict[str, Fence] = {}

    def hold(self, info: LockInfo) -> None:
        with self._guard:
            self._fences[info.fleet] = Fence(info.fleet, info.owner, info.epoch)

    def drop(self, fleet: str, owner: str) -> None:
        with self._guard:
            fence = self._fences.get(fleet)
            if fence is not None and fence.owner == owner:
                del self._fences[fleet]

    def get(self, fleet: str) -> Fence | None:
        with self._guard:
            return self._fences.get(fleet)

    def __bool__(self) -> bool:
        with self._guard:
            return bool(self._fences)


def refused(fence: Fence, current: LockInfo | None, what: str) -> LockLost:
    """The LockLost for a write (``what``) that ``fence`` no longer admits."""
    if current is None:
        now_held = "nobody holds it now (it was force-unlocked or released)"
    elif current.owner == fence.owner:
        now_held = f"it was taken again with epoch {current.epoch}"
    else:
        now_held = (
            f"{current.owner} holds it with epoch {current.epoch} since {iso(current.acquired_at)}"
        )
    return LockLost(
        f"fleet {fence.fleet!r}: the lock is no longer held by {fence.owner} (it took the lock "
        f"with epoch {fence.epoch}); {now_held}. Refused to {what}: this process stops and "
        "writes nothing more"
    )
