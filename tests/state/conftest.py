"""Both state backends behind one fixture: SQLite in tmp_path, DynamoDB on the moto server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from immutable_sdk.state.base import RolloutRecord, StateStore
from immutable_sdk.state.dynamodb import DynamoDbStateStore
from immutable_sdk.state.dynamodb_table import create_table
from immutable_sdk.state.sqlite import SqliteStateStore

TABLE = "immutable-sdk-state"
T0 = 1_800_000_000.0

OpenStore = Callable[..., StateStore]


@pytest.fixture
def dynamodb(aws: str) -> Any:
    """A DynamoDB client on the moto server, with the state table created."""
    client = boto3.client("dynamodb", endpoint_url=aws, region_name="us-east-1")
    create_table(client, TABLE)
    return client


@pytest.fixture(params=["sqlite", "dynamodb"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """``open_store(project="shop")``: a new store object on the same backend and data.

    Two objects on the same data behave as two processes would.
    """
    opened: list[StateStore] = []
    if request.param == "sqlite":

        def make(project: str = "shop") -> StateStore:
            return SqliteStateStore(tmp_path / ".immutable" / "state.db", project)

    else:
        client = request.getfixturevalue("dynamodb")

        def make(project: str = "shop") -> StateStore:
            return DynamoDbStateStore(client, TABLE, project)

    def open_one(project: str = "shop") -> StateStore:
        store = make(project)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> StateStore:
    return open_store()


def rollout(
    id: str = "r-1", fleet: str = "web", started_at: float = T0, **fields: Any
) -> RolloutRecord:
    """A rollout record with sensible defaults."""
    values: dict[str, Any] = {
        "strategy": "rolling",
        "from_release": "rel-a",
        "to_release": "rel-b",
        "phase": "planned",
        **fields,
    }
    return RolloutRecord(id=id, fleet=fleet, started_at=started_at, **values)
