"""The Lambda handler's work: SQS records in, ticks answered, batch item failures out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...aws.session import AwsSession
from ...aws.workqueue import EventSourceQueue, Message
from ...errors import UsageError
from ...units import parse_duration
from .resources import Orchestrator
from .ticks import TickContext, load_factory, reconcile_tick
from .worker import Worker

SPEC_VAR = "IMMUTABLE_SDK_SPEC"
TICK_VAR = "IMMUTABLE_SDK_TICK"
LEASE_VAR = "IMMUTABLE_SDK_LOCK_LEASE"  # as ``worker --lease`` (default 60s)


@dataclass
class LambdaTicks:
    worker: Worker

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> LambdaTicks:
        from ...spec.load import load_spec

        files = tuple(f for f in environ.get(SPEC_VAR, "").split(":") if f)
        if not files:
            raise UsageError(f"{SPEC_VAR}: name the spec files in the function's package")
        spec = load_spec(files)
        Orchestrator.for_spec(spec)  # refuses a spec whose state is not in DynamoDB
        session = AwsSession(spec.region)
        factory = load_factory(environ[TICK_VAR]) if environ.get(TICK_VAR) else reconcile_tick
        ticker = factory(TickContext(spec, files, {}, lease=lease_of(environ)))
        queue = EventSourceQueue(session)
        return cls(Worker(queue, ticker))

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Tick each record; ``batchItemFailures`` names those SQS should deliver again."""
        failures = []
        for record in event.get("Records", []):
            message = Message(
                body=str(record.get("body", "")),
                receipt=str(record.get("receiptHandle", "")),
                receives=int(record.get("attributes", {}).get("ApproximateReceiveCount", "1")),
            )
            if self.worker.handle(message) == "invalid":
                failures.append({"itemIdentifier": record.get("messageId", "")})
        return {"batchItemFailures": failures}


def lease_of(environ: Mapping[str, str]) -> float:
    """``IMMUTABLE_SDK_LOCK_LEASE`` as seconds (at least 3, as ``worker --lease``)."""
    raw = environ.get(LEASE_VAR, "").strip()
    if not raw:
        return TickContext.lease
    try:
        lease = parse_duration(raw)
    except ValueError as exc:
        raise UsageError(f"{LEASE_VAR}: {exc}") from None
    if lease < 3.0:
        raise UsageError(f"{LEASE_VAR}: the lease must be at least 3s, got {raw!r}")
    return lease
