"""One meaning per exit code; ``plan --detailed-exitcode`` keeps Terraform's 0/1/2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from immutable_sdk import ExitCode
from immutable_sdk.cli import main


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    assert not isinstance(result.exception, AssertionError)
    return result.exit_code, result.stderr


def test_codes_are_distinct() -> None:
    values = [c.value for c in ExitCode]
    assert len(values) == len(set(values))
    assert ExitCode.DRIFT not in (ExitCode.INVALID, ExitCode.FAILED, ExitCode.OK)


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--detailed-exitcode"],  # click: missing option -f
        ["plan", "--detailed-exitcode", "--no-such-option", "-f", "x.yaml"],
        ["plan", "--detailed-exitcode", "-f", "missing.yaml"],  # a spec error
        ["plan", "--detailed-exitcode", "-f", "spec.yaml", "-o", "yaml"],  # a bad choice
        ["--max-attempts", "0", "plan", "--detailed-exitcode", "-f", "x.yaml"],  # group option
    ],
)
def test_a_usage_error_under_detailed_exitcode_exits_1_never_2(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = run(*args)
    assert code == ExitCode.FAILED, err
    assert "rror" in err
    without = [a for a in args if a != "--detailed-exitcode"]
    assert run(*without)[0] == ExitCode.INVALID  # the same mistake without the flag


def test_the_flag_from_the_environment_counts_too(tmp_path: Path) -> None:
    env = {"IMMUTABLE_SDK_PLAN_DETAILED_EXITCODE": "1"}
    code, _ = run("plan", "-f", str(tmp_path / "missing.yaml"), env=env)
    assert code == ExitCode.FAILED
