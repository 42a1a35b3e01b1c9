"""The DynamoDB store's own promises: its table, refusing a wrong one, and retried writes."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from immutable_sdk.clock import VirtualClock
from immutable_sdk.errors import StateError
from immutable_sdk.state import base
from immutable_sdk.state.dynamodb import DynamoDbStateStore
from immutable_sdk.state.dynamodb_table import create_table

from .conftest import T0, TABLE, rollout


@pytest.fixture
def client(aws: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=aws, region_name="us-east-1")


def items(client: Any, table: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.scan(TableName=table)["Items"]
    return found


def test_create_table_makes_an_on_demand_table_once(client: Any) -> None:
    assert create_table(client, TABLE) is True
    table = client.describe_table(TableName=TABLE)["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert sorted((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]) == [
        ("pk", "HASH"),
        ("sk", "RANGE"),
    ]
    assert create_table(client, TABLE) is False  # idempotent


class SlowToActivate:
    """The real client, except that the table reports CREATING for its first describes."""

    def __init__(self, client: Any, creating: int) -> None:
        self._client = client
        self.creating = creating

    def describe_table(self, **kwargs: Any) -> Any:
        response = self._client.describe_table(**kwargs)
        if self.creating > 0:
            self.creating -= 1
            response["Table"]["TableStatus"] = "CREATING"
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_create_table_waits_for_active_on_the_clock(client: Any) -> None:
    clock = VirtualClock()
    assert create_table(SlowToActivate(client, creating=3), TABLE, clock=clock, poll=2) is True
    assert clock.slept == 6


def test_create_table_gives_up_after_its_timeout(client: Any) -> None:
    clock = VirtualClock()
    slow = SlowToActivate(client, creating=1000)
    with pytest.raises(StateError, match=f"table '{TABLE}' is still CREATING after 60s"):
        create_table(slow, TABLE, clock=clock, timeout=60, poll=5)
    assert clock.monotonic() == 60


def make_wrong_table(client: Any) -> None:
    client.create_table(
        TableName="wrong",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_a_table_with_another_key_schema_is_refused_and_nothing_written(client: Any) -> None:
    make_wrong_table(client)
    with pytest.raises(StateError) as caught:
        DynamoDbStateStore(client, "wrong", "shop")
    message = str(caught.value)
    assert "has the key schema id (HASH, type S)" in message
    assert "expects pk (HASH, type S) + sk (RANGE, type S)" in message
    assert items(client, "wrong") == []
    with pytest.raises(StateError, match="has the key schema id"):
        create_table(client, "wrong")


def test_a_missing_table_names_the_command_that_creates_it(client: Any) -> None:
    with pytest.raises(
        StateError, match="does not exist; create it with `immutable-sdk state init"
    ):
        DynamoDbStateStore(client, "nope", "shop")


def test_a_table_made_elsewhere_is_stamped_with_the_schema_version(client: Any) -> None:
    client.create_table(
        TableName="terraformed",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    DynamoDbStateStore(client, "terraformed", "shop")
    assert items(client, "terraformed") == [
        {
            "pk": {"S": "META"},
            "sk": {"S": "schema"},
            "schema_version": {"N": str(base.SCHEMA_VERSION)},
        }
    ]


def test_a_table_from_a_newer_version_is_refused(client: Any) -> None:
    create_table(client, TABLE)
    DynamoDbStateStore(client, TABLE, "shop")
    client.put_item(
        TableName=TABLE,
        Item={"pk": {"S": "META"}, "sk": {"S": "schema"}, "schema_version": {"N": "9"}},
    )
    with pytest.raises(StateError) as caught:
        DynamoDbStateStore(client, TABLE, "shop")
    assert "schema version 9" in str(caught.value)
    assert f"versions up to {base.SCHEMA_VERSION}" in str(caught.value)


def test_a_project_name_with_the_key_separator_is_refused(client: Any) -> None:
    create_table(client, TABLE)
    with pytest.raises(StateError, match="cannot key DynamoDB state"):
        DynamoDbStateStore(client, TABLE, "a#b")


def test_the_documented_key_layout(client: Any) -> None:
    create_table(client, TABLE)
    store = DynamoDbStateStore(client, TABLE, "shop")
    store.acquire_lock("web", "host:1:a", 60, T0)
    store.start_rollout(rollout("r-1", "web", T0))
    store.append_journal("r-1", 0, "started", T0, {})
    store.append_journal("r-1", 0, "note", T0, {})
    store.save_gate_progress("r-1", 1, {"checks": {}}, T0)
    store.record_build("base", "sha256:1", 1, {"arn": "x"}, T0)
    store.record_release("web", "rel-a", {}, {}, T0)
    keys = sorted((i["pk"]["S"], i["sk"]["S"]) for i in items(client, TABLE))
    assert keys == [
        ("F#shop#web", "lock"),
        ("F#shop#web", "release#00000001"),
        ("F#shop#web", "release-id#rel-a"),
        ("F#shop#web", "rollout#0001800000000.000000#r-1"),
        ("I#shop#base", "build#sha256:1"),
        ("META", "schema"),
        ("P#shop", "fleet#web"),
        ("R#shop#r-1", "gate#1"),
        ("R#shop#r-1", "journal#00000001"),
        ("R#shop#r-1", "journal#00000002"),
        ("R#shop#r-1", "rollout"),
        ("R#shop#r-1", "transition#0#started"),
    ]


class ResendOnce:
    """Make botocore send one matching request twice, as if the first response got lost.

    The first attempt reaches the server and succeeds; botocore is then told to retry it, so
    the second attempt meets the first one's write.
    """

    def __init__(self, client: Any, operation: str, marker: str) -> None:
        self.marker = marker
        self.resent = 0
        client.meta.events.register(f"needs-retry.dynamodb.{operation}", self.needs_retry)

    def needs_retry(self, attempts: int, request_dict: dict[str, Any], **_: Any) -> int | None:
        body = request_dict.get("body", b"")
        text = body.decode() if isinstance(body, bytes) else str(body)
        if attempts == 1 and self.marker in text and not self.resent:
            self.resent += 1
            return 0  # retry at once
        return None


@pytest.fixture
def store(client: Any) -> DynamoDbStateStore:
    create_table(client, TABLE)
    return DynamoDbStateStore(client, TABLE, "shop")


def test_a_resent_journal_write_is_recognized(client: Any, store: DynamoDbStateStore) -> None:
    store.start_rollout(rollout())
    resend = ResendOnce(client, "PutItem", "journal#")
    entry = store.append_journal("r-1", 0, "note", T0, {"n": 1})
    assert resend.resent == 1
    assert entry.seq == 1 and entry.appended
    assert [(e.seq, e.data) for e in store.journal("r-1")] == [(1, {"n": 1})]


def test_a_resent_transition_write_is_recognized_as_ours(
    client: Any, store: DynamoDbStateStore
) -> None:
    store.start_rollout(rollout())
    resend = ResendOnce(client, "TransactWriteItems", "transition#")
    entry = store.append_journal("r-1", 0, "started", T0, {"n": 1})
    assert resend.resent == 1
    assert entry.seq == 1 and entry.appended  # our own write: we notify it
    assert [(e.seq, e.data) for e in store.journal("r-1")] == [(1, {"n": 1})]


def test_a_resent_rollout_start_is_recognized(client: Any, store: DynamoDbStateStore) -> None:
    resend = ResendOnce(client, "TransactWriteItems", "rollout#")
    store.start_rollout(rollout())
    assert resend.resent == 1
    assert [r.id for r in store.rollouts()] == ["r-1"]


def test_a_resent_release_is_recognized(client: Any, store: DynamoDbStateStore) -> None:
    resend = ResendOnce(client, "TransactWriteItems", "release#")
    record = store.record_release("web", "rel-a", {"image": "web"}, {}, T0)
    assert resend.resent == 1
    assert record.seq == 1
    assert [(r.release, r.seq) for r in store.releases("web")] == [("rel-a", 1)]


def test_a_resent_lock_write_is_recognized(client: Any, store: DynamoDbStateStore) -> None:
    resend = ResendOnce(client, "PutItem", '"lock"')
    info = store.acquire_lock("web", "host:1:a", 60, T0)
    assert resend.resent == 1
    assert store.get_lock("web") == info


def test_mappings_are_stored_as_json_text(client: Any, store: DynamoDbStateStore) -> None:
    store.record_release("web", "rel-a", {"amis": {"us-east-1": "ami-1"}, "x": 0.5}, {}, T0)
    item = client.get_item(
        TableName=TABLE, Key={"pk": {"S": "F#shop#web"}, "sk": {"S": "release-id#rel-a"}}
    )["Item"]
    assert json.loads(item["artifact"]["S"]) == {"amis": {"us-east-1": "ami-1"}, "x": 0.5}


def test_a_version_1_table_is_stamped_2_and_its_locks_read_as_epoch_0(client: Any) -> None:
    create_table(client, TABLE)
    client.put_item(
        TableName=TABLE,
        Item={"pk": {"S": "META"}, "sk": {"S": "schema"}, "schema_version": {"N": "1"}},
    )
    client.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": "F#shop#web"},
            "sk": {"S": "lock"},
            "owner": {"S": "host:1:a"},
            "acquired_at": {"N": str(T0)},
            "lease_until": {"N": str(T0 + 60)},
        },
    )
    store = DynamoDbStateStore(client, TABLE, "shop")
    meta = client.get_item(TableName=TABLE, Key={"pk": {"S": "META"}, "sk": {"S": "schema"}})
    assert meta["Item"]["schema_version"] == {"N": str(base.SCHEMA_VERSION)}
    held = store.get_lock("web")
    assert held is not None and (held.owner, held.epoch) == ("host:1:a", 0)
    assert store.acquire_lock("web", "host:2:b", 60, T0 + 61).epoch == 1
    store.force_unlock("web")
    assert store.acquire_lock("web", "host:1:a", 60, T0 + 62).epoch == 3
