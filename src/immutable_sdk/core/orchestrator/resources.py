"""What ``orchestrator install`` creates for a project, and what it is called.

One state machine, one work queue and its dead-letter queue, and two roles (the state
machine's, which may only send to the queue, and the workers'), all named after the project,
in the spec's region. The state table is the spec's own DynamoDB table: ticks journal there,
whichever worker runs them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ...errors import UsageError
from ...spec.model import Spec
from .definition import TickSettings

PREFIX = "immutable-sdk"
MAX_RECEIVES = 5  # deliveries of a message no worker could answer before it goes to the DLQ


def _bounded(name: str, limit: int) -> str:
    """``name`` if it fits in ``limit`` characters, else its start and a digest of the whole."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}-{digest}"


def visibility_timeout(heartbeat_seconds: int) -> int:
    """Seconds a received message stays hidden: past the tick's heartbeat timeout, so that a
    dead worker's task is retried by Step Functions (with a new token) before its old message
    shows again (and is then dropped: its token timed out)."""
    return min(43200, 2 * heartbeat_seconds + 30)


@dataclass(frozen=True)
class Orchestrator:
    """The names and settings of a project's orchestrator resources."""

    project: str
    region: str
    state_table: str
    settings: TickSettings = field(default_factory=TickSettings)

    @classmethod
    def for_spec(cls, spec: Spec, settings: TickSettings | None = None) -> Orchestrator:
        """The project's orchestrator; refuses a spec whose state is not in DynamoDB, since
        ticks of one rollout run on many machines and must share its journal and locks."""
        if spec.state.backend != "dynamodb" or not spec.state.table:
            raise UsageError(
                f"{spec.state.location}: state.backend: the Step Functions orchestrator needs "
                f"the dynamodb state backend (workers on many machines share the journal and "
                f"the locks), got {spec.state.backend!r}; set state: {{backend: dynamodb, "
                f"table: NAME}}"
            )
        return cls(spec.name, spec.region, spec.state.table, settings or TickSettings())

    @property
    def state_machine(self) -> str:
        return _bounded(f"{PREFIX}-{self.project}", 80)

    @property
    def queue(self) -> str:
        return _bounded(f"{PREFIX}-{self.project}-ticks", 80)

    @property
    def dead_letter_queue(self) -> str:
        return _bounded(f"{PREFIX}-{self.project}-ticks-dlq", 80)

    @property
    def orchestrator_role(self) -> str:
        return _bounded(f"{PREFIX}-{self.project}-orchestrator", 64)

    @property
    def worker_role(self) -> str:
        return _bounded(f"{PREFIX}-{self.project}-worker", 64)

    @property
    def visibility_timeout(self) -> int:
        return visibility_timeout(self.settings.heartbeat_seconds)

    @property
    def worker_heartbeat(self) -> float:
        """Seconds between a worker's heartbeats: three per heartbeat timeout."""
        return max(0.5, self.settings.heartbeat_seconds / 3)
