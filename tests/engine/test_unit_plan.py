"""``Engine.plan(units=...)``: a plan of some units reads only theirs, and says what the whole
plan says of them (a reconcile tick of one unit plans that unit alone)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from immutable_sdk.aws.loopback import SANDBOX_CREDENTIALS
from immutable_sdk.aws.session import AwsSession
from immutable_sdk.core.connection import Connection
from immutable_sdk.core.engine import Engine
from immutable_sdk.core.rollout.holds import quarantine
from immutable_sdk.plugins import load_plugins
from immutable_sdk.results import Plan, PlanItem
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec

from .conftest import AMI_V1, AMI_V2, World
from .test_multi_region import SPEC as MULTI
from .test_multi_region import use_image
from .test_parallel_apply import HEAD

pytestmark = pytest.mark.slow

FLEET = """
  {name}:
    image: web
    instance_type: {size}
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {{min: 1, desired: {desired}, max: 3}}
    strategy: {{type: rolling, batch_size: 1}}
    health: {{timeout: 5m, interval: 5s, checks: [{{type: ec2}}]}}
    depends_on: [{deps}]
"""
CHECKOUT = """
  checkout:
    image: web
    instance_type: {size}
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {{min: 1, desired: 1, max: 2}}
    traffic:
      route53: {{zone: example.com., record: checkout.example.com, ttl: 60}}
      slots:
        blue: {{target_group: checkout-blue, load_balancer: checkout-blue}}
        green: {{target_group: checkout-green, load_balancer: checkout-green}}
    strategy: {{type: blue-green}}
    health: {{timeout: 5m, interval: 5s, checks: [{{type: ec2}}]}}
"""
WAVES = """
waves:
  - {name: first, fleets: [db, checkout], bake: 10m}
  - {name: rest, fleets: ['*']}
"""


def fleet(name: str, *, deps: str = "", size: str = "t3.micro", desired: int = 1) -> str:
    return FLEET.format(name=name, deps=deps, size=size, desired=desired)


def same_items(engine: Engine, whole: Plan, units: Sequence[str]) -> Plan:
    """The plan of ``units`` has exactly the whole plan's items of those units, in order."""
    part = engine.plan(units)
    want = tuple(i for i in whole.items if i.key in set(units))
    assert part.items == want, (units, part.items, want)
    images = {i.image for i in part.items if i.build}
    assert set(part.builds) == images & set(whole.builds)
    return part


def keys(plan: Plan) -> list[str]:
    return [i.key for i in plan.items]


def check_every_unit(world: World, whole: Plan, extra: Sequence[Sequence[str]] = ()) -> None:
    """Each unit alone, every unit at once and ``extra`` subsets (an engine that never
    planned the whole spec: it knows no departed region until a unit of one is asked for)."""
    with world.engine() as engine:
        for subset in [*([k] for k in keys(whole)), keys(whole), *extra]:
            same_items(engine, whole, subset)


def test_one_region_waves_depends_on_a_dropped_fleet_and_a_slot_fleet(world: World) -> None:
    first = (
        HEAD.format(project="shop")
        + fleet("db")
        + fleet("api", deps="db")
        + fleet("web", deps="api")
        + fleet("old")
        + CHECKOUT.format(size="t3.micro")
        + WAVES
    )
    world.write(first, AMI_V1)
    with world.engine() as engine:
        applied = engine.apply(parallelism=5)
    assert applied.ok, applied.to_dict()
    # old dropped; api a new release; web scaled; the slot fleet a new release; db unchanged
    second = (
        HEAD.format(project="shop")
        + fleet("db")
        + fleet("api", deps="db", size="t3.small")
        + fleet("web", deps="api", desired=2)
        + CHECKOUT.format(size="t3.small")
        + WAVES
    )
    world.write(second, AMI_V1)
    with world.engine() as engine:
        before = engine.session.calls.total
        whole = engine.plan()
        whole_calls = engine.session.calls.total - before
    assert [(i.key, i.action, i.wave) for i in whole.items] == [
        ("db", "noop", "first"),
        ("api", "replace", "rest"),
        ("web", "scale", "rest"),
        ("checkout", "replace", "first"),
        ("old", "destroy", "rest"),
    ]
    check_every_unit(world, whole, [["api", "old"], ["web", "db"], ["checkout", "nope"]])
    with world.engine() as engine:
        assert engine.plan(["nope", "web@us-east-1", "web@us-west-2"]).items == ()
        assert engine.plan([]).items == ()
        # a unit of the spec is planned without asking AWS for the project's other groups
        before = engine.session.calls.snapshot()
        part = engine.plan(["api"])
        calls = engine.session.calls.since(before)
    assert keys(part) == ["api"]
    assert sum(calls.values()) < whole_calls, (calls, whole_calls)
    # the dropped fleet's group is asked for by name (project_fleets' filtered describe) only
    # when a planned key is not a fleet of the spec
    with world.engine() as engine:
        before = engine.session.calls.snapshot()
        engine.plan(["db"])
        db_calls = engine.session.calls.since(before)
        before = engine.session.calls.snapshot()
        engine.plan(["old"])
        old_calls = engine.session.calls.since(before)
    assert "ec2.DescribeImages" in db_calls and "ec2.DescribeImages" not in old_calls
    assert "autoscaling.DescribeAutoScalingGroups" in old_calls


REGIONAL = """
  {name}:
    image: web
    regions: [{regions}]
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {{min: 1, desired: 1, max: 2}}
    strategy: {{type: rolling, batch_size: 1}}
    health: {{timeout: 5m, interval: 10s, checks: [{{type: ec2}}]}}
    depends_on: [{deps}]
"""
MULTI_WAVES = """
waves:
  - {name: one-box, fleets: [web], regions: [us-west-2], bake: 30m}
  - {name: rest, fleets: ['*'], max_regions_in_flight: 1}
"""


def regional(name: str, regions: str, deps: str = "") -> str:
    return REGIONAL.format(name=name, regions=regions, deps=deps)


def test_several_regions_waves_depends_on_dropped_units_and_a_departed_region(
    world: World,
) -> None:
    both = "us-east-1, us-west-2"
    world.write(
        MULTI
        + regional("web", both)
        + regional("api", both, deps="web")
        + regional("edge", "us-west-2")
        + MULTI_WAVES
    )
    use_image(world, AMI_V1)
    with world.engine() as engine:
        applied = engine.apply(parallelism=5)
    assert applied.ok, applied.to_dict()

    # a new image everywhere; api leaves us-west-2; edge is dropped
    world.write(
        MULTI + regional("web", both) + regional("api", "us-east-1", deps="web") + MULTI_WAVES
    )
    use_image(world, AMI_V2)
    with world.engine() as engine:
        whole = engine.plan()
    assert [(i.key, i.action, i.wave) for i in whole.items] == [
        ("web", "replace", "rest"),
        ("web@us-west-2", "replace", "one-box"),
        ("api", "replace", "rest"),
        ("api@us-west-2", "destroy", "rest"),
        ("edge@us-west-2", "destroy", "rest"),
    ]
    check_every_unit(world, whole, [["api", "web@us-west-2"], ["edge@us-west-2", "web"]])
    with world.engine() as engine:  # one unit of the spec's own region: no other region read
        before = engine.session.calls.snapshot()
        assert keys(engine.plan(["api"])) == ["api"]
        calls = engine.session.calls.since(before)
    # the group of api in us-east-1 only: no project_fleets, no us-west-2 (a whole plan: 4)
    assert calls["autoscaling.DescribeAutoScalingGroups"] == 1, calls

    # us-west-2 departed: the state knows its units, the spec deploys nothing there
    world.write(MULTI + regional("web", "us-east-1") + regional("api", "us-east-1", deps="web"))
    with world.engine() as engine:
        whole = engine.plan()
    assert [(i.key, i.action) for i in whole.items] == [
        ("web", "replace"),
        ("api", "replace"),
        ("web@us-west-2", "destroy"),
        ("api@us-west-2", "destroy"),
        ("edge@us-west-2", "destroy"),
    ]
    check_every_unit(world, whole, [["web@us-west-2", "api"]])


def many(project: str, count: int) -> str:
    text = HEAD.format(project=project).replace(
        "images:", f"state: {{backend: dynamodb, table: {project}-state}}\nimages:"
    )
    for n in range(count):
        text += fleet(f"f{n:02d}", deps="f00" if n % 3 == 2 else "")
    return text + "waves:\n  - {name: a, fleets: [f00, f01]}\n  - {name: b, fleets: ['*']}\n"


def dynamodb_engine(world: World, path: Path) -> Engine:
    """An engine whose DynamoDB state table is read through its own session: its
    ``session.calls`` count the state's requests too, as a worker's do."""
    plugins = load_plugins(autoload=False)
    spec = load_spec([path], plugins=plugins)
    Sandbox.attach(world.url).seed(spec, plugins)
    session = AwsSession("us-east-1", endpoint_url=world.url, credentials=SANDBOX_CREDENTIALS)
    Connection(session).create_state(spec)
    return Engine(spec, plugins=plugins, session=session, clock=world.clock)


def tick_calls(world: World, project: str, count: int) -> tuple[dict[str, int], int]:
    """The AWS calls (DynamoDB state included) of one reconcile tick of unit f01 in a spec of
    ``count`` fleets (the tick creates f01's group and starts its rollout), and a whole
    plan's calls."""
    path = world.write(many(project, count), AMI_V1)
    with dynamodb_engine(world, path) as engine:
        before = engine.session.calls.total
        engine.plan()
        whole = engine.session.calls.total - before
    with dynamodb_engine(world, path) as engine:
        result = engine.reconcile(start=True, budget=60.0, units=["f01"])
    assert list(result.units) == ["f01"], result.to_dict()
    assert result.units["f01"].state in ("converged", "progressing"), result.to_dict()
    assert result.units["f01"].rollout, result.to_dict()
    return dict(result.api_calls["by_operation"]), whole


def test_a_one_unit_tick_costs_the_same_in_a_spec_of_5_or_20_fleets(world: World) -> None:
    five, whole_five = tick_calls(world, "small", 5)
    twenty, whole_twenty = tick_calls(world, "large", 20)
    assert any(op.startswith("dynamodb.") for op in five), five
    assert five == twenty, (five, twenty)
    # a whole plan grows with the spec (every tick planned the whole spec before)
    assert whole_twenty > whole_five + 15, (whole_five, whole_twenty)


def test_an_item_of_a_held_unit_is_the_same_alone(world: World) -> None:
    """A quarantined release (blocked) and an unfinished rollout's item come from the state:
    those too are the whole plan's."""
    world.write(HEAD.format(project="shop") + fleet("db") + fleet("api"), AMI_V1)
    with world.engine() as engine:
        assert engine.apply().ok
    world.write(HEAD.format(project="shop") + fleet("db") + fleet("api"), AMI_V2)
    with world.engine() as engine:
        plan = engine.plan()
        release = plan.item("api").release
        assert release
        quarantine(engine.state, "api", release, "ro-test", ("ec2",), "failed", 1.0)
        whole = engine.plan()
    item: PlanItem = whole.item("api")
    assert item.action == "blocked", item
    check_every_unit(world, whole)
