"""The concrete PluginContext the engine hands plugins (see ``immutable_sdk.plugin``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..aws import metrics
from ..aws.session import AwsSession
from ..clock import Clock, RealClock
from ..lifecycle import Event
from ..redaction import redact
from .tick.horizon import Horizon

EventSink = Callable[[Event], None]


def _discard(event: Event) -> None:
    return None


@dataclass(frozen=True)
class Context:
    """Clock, AWS clients and event emission for one project (and optionally one rollout)."""

    project: str
    region: str
    session: AwsSession
    clock: Clock = field(default_factory=RealClock)
    sink: EventSink = _discard
    fleet: str | None = None
    rollout: str | None = None
    unit_suffix: str = ""  # "@eu-west-1" outside the spec's region (see ``regions``)
    # How long waits may last: unlimited (apply) or a reconcile tick's budget (``tick``).
    horizon: Horizon = field(default_factory=Horizon)

    def unit(self, fleet: str) -> str:
        """How people name ``fleet`` in this region: ``web``, or ``web@eu-west-1``."""
        return fleet + self.unit_suffix

    @property
    def endpoint_url(self) -> str | None:
        return self.session.endpoint_url

    def client(self, service: str, region: str | None = None) -> Any:
        return self.session.client(service, region)

    def emit(self, kind: str, **data: Any) -> None:
        # Events leave the process (printed, sent by notifiers): secrets are redacted here.
        event = Event(
            kind=kind,
            at=self.clock.now(),
            fleet=self.fleet,
            rollout=self.rollout,
            data=redact(data),
        )
        self.sink(event)

    def credentials(self) -> Mapping[str, str]:
        return self.session.credentials_env()

    def metric_data(
        self, queries: Sequence[Mapping[str, Any]], start: float, end: float
    ) -> dict[str, list[tuple[float, float]]]:
        return metrics.metric_data(self.client("cloudwatch"), queries, start, end)

    def alarm_states(self, names: Sequence[str]) -> dict[str, str]:
        return metrics.alarm_states(self.client("cloudwatch"), names)

    def sign_request(
        self,
        method: str,
        url: str,
        *,
        service: str,
        region: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> dict[str, str]:
        from ..aws.sigv4 import signed_headers  # botocore's signer, loaded when first used

        return signed_headers(
            self.credentials(),
            method,
            url,
            service=service,
            region=region or self.region,
            headers=headers or {},
            body=body,
        )

    def scoped(self, *, fleet: str | None = None, rollout: str | None = None) -> Context:
        """The same context, with events attributed to ``fleet`` / ``rollout``."""
        return replace(self, fleet=fleet or self.fleet, rollout=rollout or self.rollout)
