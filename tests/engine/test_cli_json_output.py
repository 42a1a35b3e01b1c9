"""Every ``-o json`` output carries ``format_version`` and validates against the published
output schema (src/immutable_sdk/cli/schemas/output.schema.json)."""

from __future__ import annotations

from click.testing import CliRunner, Result
from tests.cli.output_schema import check_output, schema

from immutable_sdk.cli import main
from immutable_sdk.sandbox import Sandbox
from immutable_sdk.spec.load import load_spec

from .conftest import AMI_V1, AMI_V2, World, fleet_spec


def cli(world: World, *args: str) -> Result:
    return CliRunner().invoke(main, ["--endpoint-url", world.url, *args], catch_exceptions=False)


def json_of(world: World, command: str, *args: str, code: int = 0) -> object:
    result = cli(world, *command.split(), *args, "-o", "json")
    assert result.exit_code == code, result.output
    return check_output(command, result.stdout)


def test_every_json_output_validates(world: World) -> None:
    path = world.write(fleet_spec(desired=1, strategy="{type: rolling, batch_size: 1}"))
    Sandbox.attach(world.url).seed(load_spec([path]))
    spec = str(path)
    seen = set()

    def check(command: str, *args: str, code: int = 0) -> object:
        seen.add(command)
        return json_of(world, command, "-f", spec, *args, code=code)

    check("state init")
    check("validate")
    bad = world.tmp / "bad.yaml"
    bad.write_text("name: [")
    assert json_of(world, "validate", "-f", str(bad), code=2)["valid"] is False  # type: ignore[index]
    seen.add("plugins")
    json_of(world, "plugins")
    check("plan")
    check("plan", "--fleet", "web")
    check("apply", "--yes")
    world.monkeypatch.setenv("WEB_AMI", AMI_V2)
    check("apply", "--yes")
    check("status")
    check("history")
    check("history", "--fleet", "web")
    check("drift")
    world.client("autoscaling").set_desired_capacity(
        AutoScalingGroupName="shop-web", DesiredCapacity=2
    )
    found = check("drift", code=4)
    assert found["clean"] is False  # type: ignore[index]
    check("drift", "--fix", "--dry-run", code=4)
    check("recycle", "--dry-run")
    back = check("rollback", "--fleet", "web")
    assert back["outcome"] == "promoted" and AMI_V1  # type: ignore[index]
    pinned = check("plan")  # the rollback pinned the fleet: its item carries the pin
    web = next(i for i in pinned["items"] if i["fleet"] == "web")  # type: ignore[index]
    assert (web["action"], web["hold"]["kind"]) == ("pinned", "pin")
    assert check("status")["fleets"][0]["holds"][0]["kind"] == "pin"  # type: ignore[index]
    unpinned = check("unpin", "--fleet", "web")
    assert [h["kind"] for h in unpinned["unpinned"]] == ["pin"]  # type: ignore[index]
    check("images")
    check("images list")
    check("images gc", "--dry-run")
    ticked = check("reconcile", "--yes")
    assert ticked["units"]["web"]["state"] == "converged"  # type: ignore[index]
    check("unlock", "--fleet", "web", "--force")
    # promote and abort are validated where a rollout waits (tests/slots/test_operator.py)
    # the Step Functions commands are validated in tests/orchestrator
    on_step_functions = {
        "apply --on step-functions",
        "status --on step-functions",
        "orchestrator install",
        "orchestrator abort",
        "worker",
    }
    assert set(schema()["x-commands"]) - seen <= {"promote", "abort", "status --watch"} | (
        on_step_functions
    )
