"""State stores for tests: one backend per test, any number of store objects on its data.

Two store objects on the same data behave as two processes would (SQLite ones each with its
own connection; DynamoDB ones share a client, which keeps no data of its own), which is how
fencing, exactly-once journal transitions and resumable builds are shown on both backends:
SQLite in the test's folder, DynamoDB on the emulator.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..aws.session import AwsSession
from ..state.base import StateStore
from ..state.dynamodb import DynamoDbStateStore
from ..state.dynamodb_table import create_table
from ..state.sqlite import SqliteStateStore

BACKENDS = ("sqlite", "dynamodb")
TABLE = "immutable-sdk-state"

OpenStore = Callable[..., StateStore]  # open_state_store(project="shop") -> StateStore


class Stores:
    """Opens store objects on one backend's data and closes them all at the end."""

    def __init__(self, backend: str, folder: Path, endpoint_url: str | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown state backend {backend!r}: one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.path = folder / "state.db"
        self.opened: list[StateStore] = []
        self._client = None
        if backend == "dynamodb":
            if endpoint_url is None:
                raise ValueError("the dynamodb backend needs the emulator's endpoint URL")
            self._client = AwsSession("us-east-1", endpoint_url=endpoint_url).client("dynamodb")
            create_table(self._client, TABLE)

    def open(self, project: str = "shop") -> StateStore:
        store: StateStore
        if self._client is None:
            store = SqliteStateStore(self.path, project)
        else:
            store = DynamoDbStateStore(self._client, TABLE, project)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            store.close()
        self.opened.clear()
