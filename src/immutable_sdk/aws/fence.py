"""A check that runs before every mutating AWS request a thread sends: the lock's fence.

A rollout holds its fleet's lock through a lease. A process that is stopped (SIGSTOP, a paused
VM, a long GC) past its lease may lose the lock to another process without noticing, and its
next call could then change a fleet that someone else now rolls out. So while a thread holds a
lock it installs a fence: botocore's ``before-send`` event (once per HTTP attempt, retries
included) runs the lock keeper's check before any request that changes something, and the
check raises LockLost when the lease was taken over. botocore hands an exception raised there
back to the caller without retrying it, so nothing is sent.

Reads (``Describe*``, ``Get*``, ``List*``) pass unchecked, and so do the state store's own
DynamoDB writes (the lock itself lives there). Only the thread that installed a fence is
fenced: parallel fleets each fence their own thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .session import AwsSession

Check = Callable[[], None]
READ_PREFIXES = ("Describe", "Get", "List")  # operations that only read
UNFENCED_SERVICES = frozenset({"dynamodb"})  # the state store's table, where the lock lives

_local = threading.local()


def _fences() -> list[tuple[int, Check]]:
    fences: list[tuple[int, Check]] | None = getattr(_local, "fences", None)
    if fences is None:
        fences = []
        _local.fences = fences
    return fences


def mutating(event_name: str) -> bool:
    """Whether ``before-send.<service>.<Operation>`` is a request that changes something."""
    parts = event_name.split(".")
    if len(parts) < 3:
        return False
    service, operation = parts[1], parts[2]
    return service not in UNFENCED_SERVICES and not operation.startswith(READ_PREFIXES)


def handler(session_id: int) -> Callable[..., None]:
    """The ``before-send`` handler that ``AwsSession`` registers on its events (once)."""

    def before_send(event_name: str = "", **_: Any) -> None:
        fences = getattr(_local, "fences", None)
        if not fences or not mutating(event_name):
            return None
        for owner, check in list(fences):
            if owner == session_id:
                check()
        return None

    return before_send


def install(session: AwsSession, check: Check) -> Callable[[], None]:
    """Run ``check`` before each mutating request this thread sends through ``session``.

    Returns the function that removes the fence again (idempotent).
    """
    entry = (getattr(session, "fence_id", id(session)), check)
    fences = _fences()
    fences.append(entry)

    def remove() -> None:
        if entry in fences:
            fences.remove(entry)

    return remove
