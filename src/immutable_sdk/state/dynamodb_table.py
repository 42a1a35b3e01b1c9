"""The DynamoDB table behind the team state store: calls on it, creating it, its key schema.

Creation waits through a Clock, never time.sleep; an existing table of the same name is accepted
only with the expected key schema.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..aws.session import aws_errors
from ..clock import Clock, RealClock
from ..errors import AwsError, StateError

# (attribute, key type, attribute type) of the table's primary key
KEY_SCHEMA = (("pk", "HASH", "S"), ("sk", "RANGE", "S"))
# why a transaction may be cancelled when it only met another writer (anything else is an error)
_CONFLICT_REASONS = frozenset({"None", "ConditionalCheckFailed", "TransactionConflict"})


class Table:
    """Calls on the state table: AWS errors translated, conditions failing as None, pages."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self.table = table

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        if operation != "transact_write_items":
            kwargs["TableName"] = self.table
        with aws_errors(f"state table {self.table!r}"):
            response: dict[str, Any] = getattr(self._client, operation)(**kwargs)
        return response

    def conditional(self, operation: str, **kwargs: Any) -> dict[str, Any] | None:
        """The response, or None when the write's condition (or its transaction's) failed."""
        try:
            return self.call(operation, **kwargs)
        except AwsError as exc:
            if exc.code == "ConditionalCheckFailedException":
                return None
            if exc.code == "TransactionCanceledException":
                response = getattr(exc.__cause__, "response", {})
                reasons = {r.get("Code", "None") for r in response.get("CancellationReasons", [])}
                if reasons <= _CONFLICT_REASONS:
                    return None
            raise

    def transact(self, writes: list[dict[str, Any]]) -> list[str] | None:
        """Write ``writes`` in one transaction: None when written; when it was cancelled for
        a failed condition or a conflicting writer, the reason codes (one a write, in order;
        empty when the service gave none). Any other error raises."""
        try:
            self.call("transact_write_items", TransactItems=writes)
        except AwsError as exc:
            if exc.code != "TransactionCanceledException":
                raise
            response = getattr(exc.__cause__, "response", {})
            reasons = [r.get("Code", "None") for r in response.get("CancellationReasons", [])]
            if not set(reasons) <= _CONFLICT_REASONS:
                raise
            return reasons
        return None

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.call(
            "get_item", Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        ).get("Item")
        return item

    def query(
        self,
        pk: str,
        prefix: str,
        *,
        newest_first: bool = False,
        limit: int | None = None,
        where: str | None = None,
        names: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Items of partition ``pk`` whose sort key starts with ``prefix``, page by page."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk"},
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": prefix}},
            "ConsistentRead": True,
            "ScanIndexForward": not newest_first,
        }
        if where:
            kwargs["FilterExpression"] = where
            kwargs["ExpressionAttributeNames"].update(names or {})
        elif limit is not None:
            kwargs["Limit"] = limit
        count = 0
        while limit is None or count < limit:
            response = self.call("query", **kwargs)
            for item in response.get("Items", []):
                yield item
                count += 1
                if limit is not None and count >= limit:
                    return
            if not response.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def new(self, item: dict[str, Any]) -> dict[str, Any]:
        """A transaction's Put of an item that must not exist yet."""
        return {
            "Put": {
                "TableName": self.table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": "pk"},
            }
        }


def _spell(keys: tuple[tuple[str, str, str], ...]) -> str:
    if not keys:
        return "no keys"
    return " + ".join(
        f"{name} ({key_type}, type {attr_type})" for name, key_type, attr_type in keys
    )


def check_key_schema(description: Mapping[str, Any], table: str) -> None:
    """Raise StateError unless the described table is keyed by string ``pk`` and ``sk``."""
    types = {
        a["AttributeName"]: a["AttributeType"] for a in description.get("AttributeDefinitions", ())
    }
    found = tuple(
        sorted(
            (
                (k["AttributeName"], k["KeyType"], types.get(k["AttributeName"], "?"))
                for k in description.get("KeySchema", ())
            ),
            key=lambda k: k[1] != "HASH",
        )
    )
    if found != KEY_SCHEMA:
        raise StateError(
            f"DynamoDB table {table!r} has the key schema {_spell(found)}, but the state store "
            f"expects {_spell(KEY_SCHEMA)}; use a table made by `immutable-sdk state init` "
            "(nothing was written)"
        )


def describe_table(client: Any, table: str) -> dict[str, Any]:
    """The table's description; StateError naming the fix when it does not exist."""
    try:
        with aws_errors(f"state table {table!r}"):
            description: dict[str, Any] = client.describe_table(TableName=table)["Table"]
    except AwsError as exc:
        if exc.code == "ResourceNotFoundException":
            raise StateError(
                f"DynamoDB state table {table!r} does not exist; create it with "
                "`immutable-sdk state init -f SPEC`"
            ) from exc
        raise
    return description


def create_table(
    client: Any,
    table: str,
    *,
    clock: Clock | None = None,
    timeout: float = 300.0,
    poll: float = 2.0,
) -> bool:
    """Create the state table (on-demand billing) unless it exists; wait until it is ACTIVE.

    Returns True when it created the table, False when a table of that name was there already
    (which must have the expected key schema: StateError otherwise).
    """
    clock = clock or RealClock()
    created = True
    try:
        with aws_errors(f"creating state table {table!r}"):
            client.create_table(
                TableName=table,
                AttributeDefinitions=[
                    {"AttributeName": name, "AttributeType": attr_type}
                    for name, _, attr_type in KEY_SCHEMA
                ],
                KeySchema=[
                    {"AttributeName": name, "KeyType": key_type} for name, key_type, _ in KEY_SCHEMA
                ],
                BillingMode="PAY_PER_REQUEST",
            )
    except AwsError as exc:
        if exc.code != "ResourceInUseException":
            raise
        created = False
    deadline = clock.monotonic() + timeout
    while True:
        description = describe_table(client, table)
        if not created:
            check_key_schema(description, table)
        status = description.get("TableStatus")
        if status == "ACTIVE":
            return created
        if clock.monotonic() >= deadline:
            raise StateError(
                f"DynamoDB state table {table!r} is still {status} after {timeout:g}s; "
                "run the command again once it is ACTIVE"
            )
        clock.sleep(poll)
