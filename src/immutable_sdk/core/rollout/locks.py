"""A fleet's lock, held by a running rollout: acquire (or wait), renew, fence, release.

One rollout per fleet at a time (docs/design.md, section 6). The lock in the state store holds an
owner id (``host:pid:random``) and a lease. Only its owner renews or releases it; another
process takes it only once the lease expired. While a ``LockKeeper`` holds the lock:

* the keeper is the rollout's heartbeat and safe point: calling it renews the lease once a
  third of it has passed, and raises Interrupted if a stop was requested;
* ``keeper.clock`` is the clock every wait of the rollout goes through: it cuts sleeps into
  pieces of at most a third of the lease (and of a second on the real clock), calling the
  keeper between them, so leases stay fresh and stop requests are honoured within a second;
* the lock's epoch (fencing token, see ``state.fencing``) guards both ways a rollout changes
  things: the state store checks it in every write it makes for the fleet, and a fence
  (``aws.fence``) checks it before every mutating AWS request of the holding thread, with one
  read of the lock (``verify``; renewing instead when a renewal is due). A process that was
  stopped past its lease, or whose lock was force-unlocked, learns it (LockLost) before it
  changes anything, in AWS or in the state store. The reads cost one state-store read per
  mutating AWS call (a rollout makes a few per batch, none per instance); ``fence_checks``
  counts them.

Leases are compared with each host's wall clock: hosts that share a state store should keep
their clocks in sync (NTP) to well within a lease.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ...aws import fence
from ...clock import Clock, RealClock
from ...errors import LockHeld, LockLost
from ...state.base import StateStore
from ...state.fencing import Fence, refused
from ..context import Context
from ..stopping import StopRequest

LOCK_POLL = 1.0  # seconds between attempts while waiting for a held lock
STOP_POLL = 1.0  # longest real-time sleep between two looks at a stop request


@dataclass
class LockKeeper:
    """Holds one fleet's lock for one rollout (see the module docstring)."""

    state: StateStore
    fleet: str
    owner: str
    lease: float
    ctx: Context
    stop: StopRequest | None = None
    wait: float = 0.0  # seconds to wait for a lock that another owner holds
    last: float = 0.0  # clock.now() of the last acquire or renewal
    epoch: int = 0  # the lock's fencing token, from acquire
    fence_checks: int = 0  # lock reads made by verify (one per mutating AWS call)
    _unfence: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def clock(self) -> Clock:
        """A clock whose sleeps renew the lease and honour stop requests (see module doc)."""
        return KeptClock(self)

    def acquire(self) -> None:
        """Take the lock, waiting up to ``wait`` seconds for another owner's lock to free."""
        clock = self.ctx.clock
        deadline = clock.monotonic() + self.wait
        told = False
        while True:
            try:
                info = self.state.acquire_lock(self.fleet, self.owner, self.lease, clock.now())
                break
            except LockHeld as held:
                left = deadline - clock.monotonic()
                if left <= 0:
                    raise
                if not told:
                    self.ctx.emit(
                        "lock.waiting",
                        fleet=self.fleet,
                        holder=held.owner,
                        since=held.since,
                        lease_until=held.lease_until,
                        wait=self.wait,
                    )
                    told = True
                if self.stop is not None:
                    self.stop.check()
                clock.sleep(min(LOCK_POLL, left))
        self.last = clock.now()
        self.epoch = info.epoch
        self._unfence = fence.install(self.ctx.session, self.verify)

    def check(self) -> None:
        """Renew the lease if a third of it has passed; LockLost if it is no longer ours."""
        now = self.ctx.clock.now()
        if now - self.last < self.lease / 3:
            return
        try:
            self.state.renew_lock(self.fleet, self.owner, self.lease, now)
        except LockLost as exc:
            self._lost(exc)
            raise
        self.last = now

    def verify(self) -> None:
        """Before a mutating AWS request: LockLost unless the lock is still ours, with our
        epoch (a renewal when one is due, else one read of the lock)."""
        if self.ctx.clock.now() - self.last >= self.lease / 3:
            self.check()
            return
        self.fence_checks += 1
        current = self.state.get_lock(self.fleet)
        if current is None or (current.owner, current.epoch) != (self.owner, self.epoch):
            lost = refused(Fence(self.fleet, self.owner, self.epoch), current, "change AWS")
            self._lost(lost)
            raise lost

    def _lost(self, exc: LockLost) -> None:
        self.ctx.emit(
            "lock.lost", fleet=self.fleet, owner=self.owner, epoch=self.epoch, error=str(exc)
        )

    def __call__(self) -> None:
        """Heartbeat at a safe point: honour a stop request, renew the lease when due."""
        if self.stop is not None:
            self.stop.check()
        self.check()

    def release(self) -> None:
        """Give the lock back (only if still ours) and take the fence down."""
        self._take_fence_down()
        self.state.release_lock(self.fleet, self.owner)

    def abandon(self) -> None:
        """Take the fence down but keep the lock: it frees itself when its lease expires.

        For exits in the middle of a change (a second SIGINT, a crash): an AWS request may
        still be in flight, so a resumer should wait for the lease rather than start at once.
        """
        self._take_fence_down()

    def _take_fence_down(self) -> None:
        if self._unfence is not None:
            self._unfence()
            self._unfence = None


@dataclass(frozen=True)
class KeptClock:
    """The rollout's clock: sleeps in pieces, calling the keeper (heartbeat) between them."""

    keeper: LockKeeper

    @property
    def inner(self) -> Clock:
        return self.keeper.ctx.clock

    def now(self) -> float:
        return self.inner.now()

    def monotonic(self) -> float:
        return self.inner.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        inner = self.inner
        piece = self.keeper.lease / 3
        if isinstance(inner, RealClock):
            piece = min(piece, STOP_POLL)
        end = inner.monotonic() + seconds
        while True:
            self.keeper()
            left = end - inner.monotonic()
            if left <= 1e-9:
                return
            inner.sleep(min(left, piece))
