"""docs/errors.md names every error class and every exit code."""

from __future__ import annotations

import inspect
from pathlib import Path

from immutable_sdk import errors

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text()


def test_every_error_class_and_exit_code_is_documented() -> None:
    classes = [
        name
        for name, cls in vars(errors).items()
        if inspect.isclass(cls)
        and issubclass(cls, errors.ImmutableSdkError)
        and cls is not errors.ImmutableSdkError
    ]
    assert len(classes) >= 10
    for name in classes:
        assert f"| `{name}`" in PAGE, name
    for code in errors.ExitCode:
        assert f"| {code.value} | `{code.name}` |" in PAGE, code


def test_detailed_exitcode_table_keeps_terraforms_meaning() -> None:
    assert errors.DETAILED_CHANGES == 2
    section = PAGE.split("**`plan --detailed-exitcode`**", 1)[1]
    assert "| 0 | the plan has no changes |" in section
    assert "| 1 | any error" in section and "usage error" in section
    assert "| 2 | the plan has changes |" in section
