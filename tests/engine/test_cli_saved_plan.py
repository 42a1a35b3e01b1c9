"""``plan --out FILE`` and ``apply FILE``: the saved plan is applied, or refused when the spec
or AWS changed since, saying what changed."""

from __future__ import annotations

import json
import os
import stat

from click.testing import CliRunner, Result

from immutable_sdk.cli import main
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec

from .conftest import AMI_V2, World, fleet_spec


def cli(world: World, *args: str) -> Result:
    return CliRunner().invoke(main, ["--endpoint-url", world.url, *args], catch_exceptions=False)


def seeded(world: World) -> str:
    path = world.write(fleet_spec(desired=2, strategy="{type: rolling, batch_size: 1}"))
    Sandbox.attach(world.url).seed(load_spec([path]))
    return str(path)


def test_a_saved_plan_is_applied_as_made(world: World) -> None:
    spec = seeded(world)
    planfile = str(world.tmp / "web.plan")
    made = cli(world, "plan", "-f", spec, "-out", planfile)  # Terraform's spelling works too
    assert made.exit_code == 0, made.output
    assert f"apply it with: immutable-sdk apply {planfile}" in made.stderr
    assert stat.S_IMODE(os.stat(planfile).st_mode) == 0o600
    applied = cli(world, "apply", planfile, "-o", "json")  # no --yes: it was reviewed
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["fleets"][0]["outcome"] in ("created", "promoted")
    assert world.group()["DesiredCapacity"] == 2
    again = cli(world, "apply", planfile)
    assert again.exit_code == 2  # applied: AWS runs the release now, the plan is stale
    assert "is stale, nothing applied" in again.stderr
    assert "web: AWS changed: current_release None -> 'r-" in again.stderr


def test_a_spec_change_refuses_the_saved_plan(world: World) -> None:
    spec = seeded(world)
    planfile = str(world.tmp / "web.plan")
    assert cli(world, "plan", "-f", spec, "--out", planfile, "-o", "json").exit_code == 0
    world.monkeypatch.setenv("WEB_AMI", AMI_V2)  # the image the spec names is another now
    refused = cli(world, "apply", planfile)
    assert refused.exit_code == 2
    assert "web: its spec changed" in refused.stderr and "make a new plan" in refused.stderr
    assert world.group() == {}  # nothing applied


def test_an_aws_change_refuses_the_saved_plan(world: World) -> None:
    spec = seeded(world)
    assert cli(world, "apply", "-f", spec, "--yes").exit_code == 0
    world.monkeypatch.setenv("WEB_AMI", AMI_V2)
    planfile = str(world.tmp / "web.plan")
    assert cli(world, "plan", "-f", spec, "--out", planfile).exit_code == 0
    world.client("autoscaling").set_desired_capacity(
        AutoScalingGroupName="shop-web", DesiredCapacity=3
    )
    refused = cli(world, "apply", planfile)
    assert refused.exit_code == 2
    assert "web: AWS changed: current_capacity [2, 2, 4] -> [2, 3, 4]" in refused.stderr


def test_what_is_not_a_saved_plan(world: World) -> None:
    spec = seeded(world)
    other = world.tmp / "other.json"
    other.write_text("{}")
    bad = cli(world, "apply", str(other))
    assert bad.exit_code == 2 and "not a saved plan" in bad.stderr
    both = cli(world, "apply", str(other), "-f", spec)
    assert both.exit_code == 2 and "drop -f and --fleet" in both.stderr
    none = cli(world, "apply")
    assert none.exit_code == 2 and "give the spec with -f SPEC, or a saved plan" in none.stderr
