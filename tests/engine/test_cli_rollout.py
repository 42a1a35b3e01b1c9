"""The rollout commands as a user runs them: exit codes, prompts, JSON, status, history."""

from __future__ import annotations

import json

from click.testing import CliRunner

from immutable_sdk.cli import main
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec

from .conftest import AMI_V1, AMI_V2, World, fleet_spec


def cli(world: World, *args: str, input: str | None = None):
    runner = CliRunner()
    return runner.invoke(
        main, ["--endpoint-url", world.url, *args], input=input, catch_exceptions=False
    )


def seeded(world: World, desired: int = 2) -> str:
    path = world.write(fleet_spec(desired=desired))
    Sandbox.attach(world.url).seed(load_spec([path]))
    return str(path)


def test_plan_detailed_exitcode_tells_changes_from_none(world: World) -> None:
    spec = seeded(world)
    assert cli(world, "plan", "-f", spec, "--detailed-exitcode").exit_code == 2
    applied = cli(world, "apply", "-f", spec, "--yes", "-o", "json")
    assert applied.exit_code == 0, applied.output
    result = json.loads(applied.stdout)
    assert result["outcome"] == "ok"
    assert result["api_calls"]["total"] > 0
    assert result["api_calls"]["by_operation"]["autoscaling.CreateAutoScalingGroup"] == 1
    assert cli(world, "plan", "-f", spec, "--detailed-exitcode").exit_code == 0
    world.monkeypatch.setenv("WEB_AMI", AMI_V2)
    changed = cli(world, "plan", "-f", spec, "--detailed-exitcode", "-o", "json")
    assert changed.exit_code == 2
    assert json.loads(changed.stdout)["items"][0]["action"] == "replace"


def test_apply_without_a_terminal_refuses_to_prompt(world: World) -> None:
    spec = seeded(world)
    out = cli(world, "apply", "-f", spec)
    assert out.exit_code == 2
    assert "pass --yes" in out.stderr
    assert world.group() == {}  # nothing was created


def test_status_history_and_rollback_commands(world: World) -> None:
    spec = seeded(world)
    assert cli(world, "apply", "-f", spec, "--yes").exit_code == 0
    world.monkeypatch.setenv("WEB_AMI", AMI_V2)
    assert cli(world, "apply", "-f", spec, "--yes").exit_code == 0

    status = json.loads(cli(world, "status", "-f", spec, "-o", "json").stdout)["fleets"]
    assert status[0]["fleet"] == "web"
    (release,) = status[0]["instances"]
    assert status[0]["instances"][release]["in_service"] == 2

    history = json.loads(cli(world, "history", "-f", spec, "-o", "json").stdout)["fleets"]
    rollouts = history["web"]["rollouts"]
    assert [r["outcome"] for r in rollouts] == ["promoted", "promoted"]
    first_release = rollouts[1]["to_release"]

    back = cli(world, "rollback", "-f", spec, "--fleet", "web", "-o", "json")
    assert back.exit_code == 0, back.output
    assert json.loads(back.stdout)["to_release"] == first_release
    assert {m["ImageId"] for m in world.members()} == {AMI_V1}

    unknown = cli(world, "rollback", "-f", spec, "--fleet", "db")
    assert unknown.exit_code == 2
    assert "no fleet 'db'" in unknown.stderr


def test_history_of_an_unknown_fleet_is_an_error_listing_the_fleets(world: World) -> None:
    spec = seeded(world)
    out = cli(world, "history", "-f", spec, "--fleet", "nope")
    assert out.exit_code == 2
    assert "the spec has no fleet 'nope' (fleets: web)" in out.stderr
    assert cli(world, "history", "-f", spec, "--fleet", "web").exit_code == 0


def test_plan_and_apply_warn_as_validate_does_and_refuse_what_it_refuses(world: World) -> None:
    # a file outside the spec's folder: the same located warning; validate --strict refuses
    outside = world.tmp.parent / f"{world.tmp.name}-boot.sh"
    outside.write_text("#!/bin/sh\n")
    text = fleet_spec(desired=2).replace("user_data: boot.sh", f"user_data: {outside}")
    spec = str(world.write(text))
    Sandbox.attach(world.url).seed(load_spec([spec]))
    warning = [ln for ln in cli(world, "validate", "-f", spec).stderr.splitlines() if ln]
    assert len(warning) == 1 and "(an absolute path) is outside the folder" in warning[0]
    assert cli(world, "validate", "--strict", "-f", spec).exit_code == 2
    planned = cli(world, "plan", "-f", spec)
    assert planned.exit_code == 0, planned.output
    assert warning[0] in planned.stderr.splitlines()
    # a ${VAR} in a key: refused by apply at the same place as by validate, before any change
    world.monkeypatch.setenv("FLEET", "web")
    spec = str(world.write(text.replace("\n  web:\n", "\n  ${FLEET}:\n")))
    refused = cli(world, "validate", "-f", spec)
    applied = cli(world, "apply", "-f", spec, "--yes")
    assert refused.exit_code == applied.exit_code == 2
    assert "fleets: key '${FLEET}' uses ${FLEET}" in refused.stderr
    assert refused.stderr == applied.stderr
    assert world.group() == {}
