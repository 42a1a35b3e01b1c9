"""State stores: the SQLite default and the DynamoDB team backend.

``open_state`` picks the backend a spec's ``state`` block names. The stores implement
``base.StateStore``: fleet locks with an owner and a lease, rollouts and their journal, the
release history, and operator signals, all scoped by the spec's project name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import StateError
from .base import (
    SCHEMA_VERSION,
    JournalEntry,
    LockInfo,
    ReleaseRecord,
    RolloutRecord,
    StateStore,
)

if TYPE_CHECKING:
    from ..aws.session import AwsSession
    from ..spec.model import StateSpec

BACKENDS = ("local", "dynamodb")


def open_state(
    spec_state: StateSpec, project: str, *, session: AwsSession | None = None
) -> StateStore:
    """The state store of a spec's ``state`` block; ``dynamodb`` needs an AWS session."""
    if spec_state.backend == "local":
        from .sqlite import SqliteStateStore

        return SqliteStateStore(spec_state.path, project)
    if spec_state.backend == "dynamodb":
        from .dynamodb import DynamoDbStateStore

        if not spec_state.table:
            raise StateError("state.table: the dynamodb state backend needs a table name")
        if session is None:
            raise StateError("the dynamodb state backend needs an AWS session to reach its table")
        client = session.client("dynamodb", spec_state.region or session.region)
        return DynamoDbStateStore(client, spec_state.table, project)
    raise StateError(
        f"state.backend: unknown backend {spec_state.backend!r}; expected one of "
        + ", ".join(BACKENDS)
    )


__all__ = [
    "BACKENDS",
    "SCHEMA_VERSION",
    "JournalEntry",
    "LockInfo",
    "ReleaseRecord",
    "RolloutRecord",
    "StateStore",
    "open_state",
]
