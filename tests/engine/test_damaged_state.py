"""A damaged state store, as the commands meet it: broken JSON, an unknown step kind, missing
fields or attributes, on SQLite and DynamoDB. Every command that reads the damaged row stops
with one ``error:`` line naming the row, StateError's exit code (1) and no traceback."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result

from immutable_sdk.cli import main
from immutable_sdk.errors import StateError
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec

from .conftest import AMI_V1, AMI_V2, World, fleet_spec

TABLE = "shop-state"
# attribute names the damage touches (some, like data, are reserved words in expressions)
ATTRIBUTES = (
    "data",
    "steps",
    "artifact",
    "outcome",
    "finished_at",
    "phase",
    "to_release",
    "seq",
    "created_at",
)


def cli(world: World, *args: str) -> Result:
    count = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
    words, rest = list(args[:count]), list(args[count:])
    return CliRunner().invoke(
        main,
        ["--endpoint-url", world.url, *words, "-f", str(world.spec_path), *rest],
        catch_exceptions=False,  # a traceback fails the test
    )


class Damage:
    """Changes rows of the state store behind the SDK's back, per backend."""

    def __init__(self, world: World, backend: str) -> None:
        self.world = world
        self.backend = backend
        self.ddb = boto3.client("dynamodb", endpoint_url=world.url, region_name="us-east-1")

    # -- SQLite -------------------------------------------------------------------------------
    def sql(self, statement: str) -> None:
        [db] = list(self.world.tmp.rglob("state.db"))
        with sqlite3.connect(db) as con:
            assert con.execute(statement).rowcount >= 1
        con.close()

    # -- DynamoDB -----------------------------------------------------------------------------
    def items(self, sk_prefix: str) -> list[dict[str, Any]]:
        found = self.ddb.scan(TableName=TABLE)["Items"]
        return [i for i in found if i["sk"]["S"].startswith(sk_prefix)]

    def update(self, sk_prefix: str, expression: str, values: dict[str, Any] | None = None) -> None:
        targets = self.items(sk_prefix)
        assert targets, sk_prefix
        for item in targets:
            names = {f"#{n}": n for n in ATTRIBUTES if f"#{n}" in expression}
            self.ddb.update_item(
                TableName=TABLE,
                Key={"pk": item["pk"], "sk": item["sk"]},
                UpdateExpression=expression,
                **({"ExpressionAttributeNames": names} if names else {}),
                **({"ExpressionAttributeValues": values} if values else {}),
            )

    def attribute(self, sk_prefix: str, name: str, value: str) -> None:
        self.update(sk_prefix, f"SET #{name} = :v", {":v": {"S": value}})

    # -- what a test asks for -------------------------------------------------------------------
    def rollout_column(self, name: str, value: str) -> None:
        if self.backend == "sqlite":
            self.sql(f"UPDATE rollouts SET {name} = '{value}'")
        else:
            self.attribute("rollout#", name, value)

    def journal_data(self, value: str) -> None:
        if self.backend == "sqlite":
            self.sql(f"UPDATE journal SET data = '{value}'")
        else:
            self.attribute("journal#", "data", value)

    def release_column(self, name: str, value: str) -> None:
        if self.backend == "sqlite":
            self.sql(f"UPDATE releases SET {name} = '{value}'")
        else:
            self.attribute("release", name, value)

    def unfinish(self) -> None:
        """Make the promoted rollout look unfinished (a process died in it)."""
        if self.backend == "sqlite":
            self.sql("UPDATE rollouts SET outcome = NULL, finished_at = NULL, phase = 'shifting'")
        else:
            self.update(
                "rollout#",
                "REMOVE #outcome, #finished_at SET #phase = :p",
                {":p": {"S": "shifting"}},
            )

    def drop_attribute(self, sk_prefix: str, name: str) -> None:
        self.update(sk_prefix, f"REMOVE #{name}")


def deploy(world: World, backend: str) -> Damage:
    """Fleet ``web`` rolled out twice (promoted rollouts, their journals, two releases); the
    spec then asks for the first image again, so plan and apply have work to do."""
    text = fleet_spec(desired=2)
    if backend == "dynamodb":
        state = f"state: {{backend: dynamodb, table: {TABLE}}}\n"
        text = text.replace("region: us-east-1\n", "region: us-east-1\n" + state, 1)
    world.write(text, AMI_V1)
    Sandbox.attach(world.url).seed(load_spec([world.spec_path]))
    if backend == "dynamodb":
        assert cli(world, "state", "init").exit_code == 0
    for ami in (AMI_V1, AMI_V2):  # two releases: rollback has one to go back to
        world.monkeypatch.setenv("WEB_AMI", ami)
        applied = cli(world, "apply", "--yes")
        assert applied.exit_code == 0, applied.output
    world.monkeypatch.setenv("WEB_AMI", AMI_V1)
    return Damage(world, backend)


@pytest.fixture(params=["sqlite", "dynamodb"])
def deployed(request: pytest.FixtureRequest, world: World) -> Damage:
    return deploy(world, request.param)


def assert_one_clean_error(result: Result, *names: str) -> None:
    output = result.output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert result.exit_code == StateError.exit_code, output
    for name in names:
        assert name in errors[0], errors[0]
    assert "damaged" in errors[0]


Case = tuple[Callable[[Damage], None], tuple[str, ...], tuple[str, ...]]

# how to damage the store, the commands that must refuse, and what the error names
CASES: dict[str, Case] = {
    "rollout data: broken JSON": (
        lambda d: d.rollout_column("data", "{broken"),
        ("history", "rollback --fleet web", "images"),
        ("ro-", "data", "broken JSON"),
    ),
    "rollout steps: unknown kind": (
        lambda d: d.rollout_column("steps", '[{"kind": "warp"}]'),
        ("history", "rollback --fleet web", "images"),
        ("ro-", "steps", "unknown step kind 'warp'"),
    ),
    "rollout steps: missing field": (
        lambda d: d.rollout_column("steps", '[{"kind": "launch"}]'),
        ("history", "rollback --fleet web"),
        ("ro-", "step 0", "count"),
    ),
    "journal of an unfinished rollout: broken JSON": (
        lambda d: (d.unfinish(), d.journal_data('{"ids": [')),
        ("status", "apply --yes"),
        ("journal", "broken JSON"),
    ),
    "journal of an unfinished rollout: not an object": (
        lambda d: (d.unfinish(), d.journal_data("[1, 2]")),
        ("status", "apply --yes"),
        ("journal", "expected an object"),
    ),
    "unfinished rollout steps: unknown kind": (
        lambda d: (d.unfinish(), d.rollout_column("steps", '[{"kind": "warp"}]')),
        ("status", "plan", "apply --yes", "promote --fleet web", "abort --fleet web"),
        ("ro-", "steps", "unknown step kind 'warp'"),
    ),
    "release artifact: broken JSON": (
        lambda d: d.release_column("artifact", "[1,"),
        ("history", "plan", "apply --yes", "rollback --fleet web", "drift", "images"),
        ("release", "artifact", "broken JSON"),
    ),
    "release artifact: missing fields": (
        lambda d: d.release_column("artifact", "{}"),
        ("rollback --fleet web",),
        ("release r-", "no 'image'"),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_row_is_a_clean_state_error(deployed: Damage, case: str) -> None:
    damage, commands, names = CASES[case]
    damage(deployed)
    for command in commands:
        result = cli(deployed.world, *command.split())
        assert_one_clean_error(result, *names)


@pytest.mark.parametrize(
    ("sk_prefix", "attribute", "commands"),
    [
        ("rollout#", "to_release", ("history", "rollback --fleet web")),
        ("journal#", "seq", ("status", "apply --yes")),
        ("release", "created_at", ("history", "plan", "rollback --fleet web")),
    ],
)
def test_a_dynamodb_item_missing_an_attribute_is_named(
    world: World, sk_prefix: str, attribute: str, commands: tuple[str, ...]
) -> None:
    damage = deploy(world, "dynamodb")
    if sk_prefix == "journal#":
        damage.unfinish()
    damage.drop_attribute(sk_prefix, attribute)
    for command in commands:
        result = cli(world, *command.split())
        assert_one_clean_error(result, f"missing attribute '{attribute}'", f"sk='{sk_prefix}")
