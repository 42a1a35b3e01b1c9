"""Faults armed for the next ``apply`` of the safety machine, injected at the HTTP layer.

Each fault is a botocore handler on one engine's session (as tests/engine/test_faults.py and
tests/engine/durable.py inject them), so the SDK's own code and botocore's retries decide what
happens next. ``Crash`` is the one from the durability tests: a BaseException, a process dying.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.httpsession import URLLib3Session
from tests.engine.durable import Crash, crash_at_call
from tests.engine.test_faults import error_response

from immutable_sdk.aws.fence import mutating
from immutable_sdk.core.engine import Engine

__all__ = ["Burst", "Crash", "CrashAt", "Fault", "LostResponse"]

BURSTS = {"throttle": (400, "Throttling"), "5xx": (503, "ServiceUnavailable")}


@dataclass
class CrashAt:
    """The process dies at its ``call``-th mutating AWS call, before it is sent or after AWS
    answered it."""

    call: int
    after: bool
    fired: bool = False

    def arm(self, engine: Engine) -> None:
        crash_at_call(engine, self.call, after=self.after)


@dataclass
class Burst:
    """``length`` requests in a row, from the ``start``-th mutating one, answered with a
    retryable error (throttling or 5xx) instead of reaching the emulator."""

    kind: str
    start: int
    length: int
    injected: int = 0
    _seen: int = field(default=-1, repr=False)

    def arm(self, engine: Engine) -> None:
        status, code = BURSTS[self.kind]

        def before_send(request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
            if self._seen < self.start and mutating(event_name):
                self._seen += 1
            if self._seen < self.start or self.injected >= self.length:
                return None
            self.injected += 1
            return error_response(request.url, status, code, event_name.split(".")[1])

        engine.session.events.register("before-send.*.*", before_send)


@dataclass
class LostResponse:
    """The ``call``-th mutating request reaches AWS and takes effect, but its answer is lost
    (a read timeout): botocore sends it again, as it would on a real network."""

    call: int
    fired: bool = False

    def arm(self, engine: Engine) -> None:
        seen = [-1]
        http = URLLib3Session()

        def before_send(request: Any, event_name: str = "", **_: Any) -> None:
            if not mutating(event_name):
                return None
            seen[0] += 1
            if seen[0] != self.call or self.fired:
                return None
            self.fired = True
            http.send(request)  # it happened ...
            raise ReadTimeoutError(endpoint_url=request.url)  # ... but nobody heard the answer

        engine.session.events.register("before-send.*.*", before_send)


Fault = CrashAt | Burst | LostResponse
