"""``plan --fleet`` / ``apply --fleet``: globs, dependencies brought along, dependants named."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result

from immutable_sdk.cli import main
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec

from .conftest import World

SPEC = """
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web:
    builder: ami
    id: ${WEB_AMI}
fleets:
"""
FLEET = """
  {name}:
    image: web
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {{min: 1, desired: 1, max: 2}}
    strategy: {{type: rolling, batch_size: 1}}
    health: {{timeout: 1m, interval: 1s, checks: [{{type: ec2}}]}}
    depends_on: [{deps}]
"""


def cli(world: World, *args: str) -> Result:
    return CliRunner().invoke(main, ["--endpoint-url", world.url, *args], catch_exceptions=False)


def project(world: World) -> str:
    text = SPEC
    for name, deps in [("db", ""), ("api", "db"), ("api-admin", "db"), ("web", "api")]:
        text += FLEET.format(name=name, deps=deps)
    path = world.write(text)
    Sandbox.attach(world.url).seed(load_spec([path]))
    return str(path)


def test_plan_selects_globs_with_their_dependencies_and_names_dependants(world: World) -> None:
    spec = project(world)
    out = cli(world, "plan", "-f", spec, "--fleet", "api*", "-o", "json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [i["key"] for i in data["items"]] == ["db", "api", "api-admin"]
    assert data["selection"] == {
        "selected": ["api", "api-admin"],
        "dependencies": ["db"],
        "left_out": ["web"],
    }
    assert "also planned, as dependencies" in out.stderr and "db" in out.stderr
    assert "not applied: web (it depends on a selected fleet" in out.stderr

    repeated = cli(world, "plan", "-f", spec, "--fleet", "db", "--fleet", "web", "-o", "json")
    assert [i["key"] for i in json.loads(repeated.stdout)["items"]] == ["db", "api", "web"]


def test_a_pattern_that_matches_nothing_is_an_error_listing_the_fleets(world: World) -> None:
    spec = project(world)
    out = cli(world, "plan", "-f", spec, "--fleet", "nope*")
    assert out.exit_code == 2
    assert "--fleet 'nope*' matches no fleet (fleets: api, api-admin, db, web)" in out.stderr
    detailed = cli(world, "plan", "-f", spec, "--fleet", "nope", "--detailed-exitcode")
    assert detailed.exit_code == 1  # not "changes"


def test_apply_touches_only_the_selection(world: World) -> None:
    spec = project(world)
    out = cli(world, "apply", "-f", spec, "--fleet", "api", "--yes", "-o", "json")
    assert out.exit_code == 0, out.output
    assert [f["fleet"] for f in json.loads(out.stdout)["fleets"]] == ["db", "api"]
    assert world.group("shop-db") and world.group("shop-api")
    assert not world.group("shop-web") and not world.group("shop-api-admin")
    rest = cli(world, "plan", "-f", spec, "-o", "json")
    actions = {i["key"]: i["action"] for i in json.loads(rest.stdout)["items"]}
    assert actions == {"db": "noop", "api": "noop", "api-admin": "create", "web": "create"}


def test_reconcile_matches_fleets_as_plan_does(world: World) -> None:
    """``reconcile --fleet`` takes the same globs (``web@*`` too, in a one-region spec), and
    a pattern that matches nothing is the same located error."""
    spec = project(world)
    out = cli(world, "reconcile", "-f", spec, "--fleet", "web@*", "--fleet", "db", "-o", "json")
    assert out.exit_code == 11, out.output  # changes wait for --yes: an operator's call
    assert sorted(json.loads(out.stdout)["units"]) == ["db", "web"]
    nothing = cli(world, "reconcile", "-f", spec, "--fleet", "nope*")
    assert nothing.exit_code == 2
    assert "--fleet 'nope*' matches no fleet (fleets: api, api-admin, db, web)" in nothing.stderr
