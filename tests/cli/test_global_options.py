"""Global options before or after the command; every option from the environment."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from immutable_sdk.cli import GLOBAL_NAMES, main
from immutable_sdk.errors import SpecError

SPEC = """apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web: {builder: ami, id: ami-03c3da4cfa8e8943a}
fleets:
  web:
    image: web
    instance_type: t3.micro
    subnets: [subnet-1]
    capacity: {min: 1, desired: 1, max: 2}
    strategy: {type: rolling, batch_size: 1}
"""


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture
def spec(tmp_path: Path) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return str(path)


def leaves(group: click.Group = main) -> list[click.Command]:
    out: list[click.Command] = []
    for command in group.commands.values():
        out.append(command)
        if isinstance(command, click.Group):
            out += leaves(command)
    return out


def test_every_command_accepts_every_global_option() -> None:
    for command in leaves():
        names = {p.name for p in command.params}
        missing = set(GLOBAL_NAMES) - names - {"output"}
        assert not missing, (command.name, missing)


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_command(where: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [")
    args = ["validate", "-f", str(bad)]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    result = run(*args)
    assert isinstance(result.exception, SpecError)  # --debug re-raises, wherever it stands
    plain = run("validate", "-f", str(bad))
    assert plain.exit_code == 2 and plain.exception is not None
    assert not isinstance(plain.exception, SpecError)


def test_sandbox_after_the_command(spec: str) -> None:
    result = run("state", "init", "-f", spec, "--sandbox", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["created"] is True  # the command's own sandbox


def test_a_late_option_overrides_the_early_one_and_the_environment(spec: str) -> None:
    env = {"IMMUTABLE_SDK_LOG_FORMAT": "console"}
    result = run("--max-attempts", "3", "validate", "-f", spec, "--max-attempts", "0", env=env)
    assert result.exit_code == 2
    assert "--max-attempts" in result.stderr  # the late value (0) was checked


def test_options_from_the_environment(spec: str) -> None:
    as_json = run("validate", "-f", spec, env={"IMMUTABLE_SDK_OUTPUT": "json"})
    assert json.loads(as_json.stdout)["valid"] is True  # global
    as_json = run("validate", "-f", spec, env={"IMMUTABLE_SDK_VALIDATE_OUTPUT": "json"})
    assert json.loads(as_json.stdout)["valid"] is True  # the command's own
    files = run("validate", env={"IMMUTABLE_SDK_VALIDATE_FILES": spec})
    assert files.exit_code == 0 and files.stdout.startswith("ok:")
    bad = run("apply", "-f", spec, env={"IMMUTABLE_SDK_APPLY_PARALLELISM": "0"})
    assert bad.exit_code == 2 and "--parallelism" in bad.stderr


def test_help_texts_show_no_rst_backticks() -> None:
    for command in [main, *leaves()]:
        text = command.get_help(click.Context(command, info_name=command.name))
        assert "``" not in text, command.name


def test_plugins_help_mentions_notifiers() -> None:
    assert "notifiers" in run("plugins", "--help").stdout


def test_every_duration_option_takes_compound_durations_and_says_duration() -> None:
    from immutable_sdk.cli import Duration

    durations = [
        (command.name, p)
        for command in leaves()
        for p in command.params
        if isinstance(p.type, Duration)
    ]
    names = {(c, p.name) for c, p in durations}
    assert {("apply", "lease"), ("apply", "wait_for_lock"), ("status", "interval")} <= names
    assert ("gc", "min_age") in names
    for command, param in durations:
        assert param.type.convert("1h30m", param, None) == 5400.0
        record = param.get_help_record(click.Context(click.Command(command)))
        assert record is not None and "DURATION" in record[0], (command, param.name)
    # an option whose help says it takes a time is a Duration too
    for command in leaves():
        for p in command.params:
            if isinstance(p, click.Option) and p.help and not p.hidden:
                timed = any(w in p.help.lower() for w in ("how long", "seconds", "time between"))
                assert not timed or isinstance(p.type, Duration), (command.name, p.name)


def test_status_interval_refuses_what_is_not_a_duration(spec: str) -> None:
    result = run("status", "-f", spec, "--interval", "soon")
    assert result.exit_code == 2
    assert "'--interval': expected a duration" in result.stderr
