"""``immutable-sdk drift`` and ``recycle`` as a user runs them: tables, JSON, exit codes."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result

from immutable_sdk.cli import main

from .conftest import AMI_V1, World, drift_spec, real_now_clock


def run(world: World, *args: str) -> Result:
    return CliRunner().invoke(main, ["--endpoint-url", world.url, *args], catch_exceptions=False)


def test_drift_exit_codes_table_json_dry_run_and_fix(world: World) -> None:
    real_now_clock(world)
    spec = str(world.write(drift_spec(desired=2)))
    with world.engine(AMI_V1) as engine:  # seeds the account and creates the fleet
        assert engine.apply().ok

    clean = run(world, "drift", "-f", spec)
    assert clean.exit_code == 0, clean.output
    assert "no drift" in clean.stdout

    world.client("autoscaling").set_desired_capacity(
        AutoScalingGroupName="shop-web", DesiredCapacity=3
    )
    found = run(world, "drift", "-f", spec)
    assert found.exit_code == 4, found.output  # ExitCode.DRIFT: not 2, invalid input
    assert "capacity" in found.stdout and "desired=3" in found.stdout and "scale" in found.stdout

    as_json = run(world, "drift", "-f", spec, "--output", "json")
    assert as_json.exit_code == 4
    data = json.loads(as_json.stdout)
    assert data["clean"] is False and data["remaining"] is None
    assert [(d["kind"], d["fleet"], d["remedy"]) for d in data["drift"]] == [
        ("capacity", "web", "scale")
    ]

    dry = run(world, "drift", "-f", spec, "--fix", "--dry-run", "-o", "json")
    assert dry.exit_code == 4
    (planned,) = json.loads(dry.stdout)["fixes"]
    assert planned["outcome"] == "planned" and planned["scale"] is True
    assert world.group()["DesiredCapacity"] == 3  # a dry run changes nothing

    fixed = run(world, "drift", "-f", spec, "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert "no drift left" in fixed.stdout
    assert world.group()["DesiredCapacity"] == 2
    assert run(world, "drift", "-f", spec).exit_code == 0


def test_drift_left_after_fix_exits_4_and_unknown_fleet_is_a_usage_error(world: World) -> None:
    real_now_clock(world)
    spec = str(world.write(drift_spec(desired=1)))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    world.client("ec2").deregister_image(ImageId=AMI_V1)
    left = run(world, "drift", "-f", spec, "--fix")
    assert left.exit_code == 4
    assert "ami-deregistered" in left.stdout and "drift left after the fix" in left.stdout
    unknown = run(world, "drift", "-f", spec, "--fleet", "nope")
    assert unknown.exit_code == 2
    assert "the spec has no fleet 'nope'" in unknown.stderr


def test_recycle_with_nothing_old(world: World) -> None:
    real_now_clock(world)
    spec = str(world.write(drift_spec(desired=1, max_lifetime="7d")))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    result = run(world, "recycle", "-f", spec)
    assert result.exit_code == 0, result.output
    assert "nothing to recycle" in result.stdout
    as_json = run(world, "recycle", "-f", spec, "--dry-run", "-o", "json")
    assert json.loads(as_json.stdout) == {"format_version": "1.0", "dry_run": True, "fleets": []}


def test_apply_recycle_replaces_instances_past_max_lifetime(world: World) -> None:
    real_now_clock(world)
    # 1ms: every instance is past it by the time the second apply looks (launch times are
    # whole seconds, rounded down), and none was when it launched.
    spec = str(world.write(drift_spec(desired=2, max_lifetime="1ms")))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    before = {i["InstanceId"] for i in world.group()["Instances"]}
    result = run(world, "apply", "-f", spec, "--yes", "--recycle", "-o", "json")
    assert result.exit_code == 0, result.output
    fleets = json.loads(result.stdout)["fleets"]
    assert [(f["action"], f["outcome"]) for f in fleets] == [
        ("noop", "noop"),
        ("recycle", "promoted"),
    ]
    assert set(fleets[1]["retired"]) == before
    after = {i["InstanceId"] for i in world.group()["Instances"]}
    assert len(after) == 2 and not after & before
