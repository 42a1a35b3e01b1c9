"""Check a command's ``-o json`` output against the published output schema."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

import jsonschema

from immutable_sdk.cli.common import FORMAT_VERSION


@cache
def schema() -> dict[str, Any]:
    text = files("immutable_sdk.cli").joinpath("schemas/output.schema.json").read_text()
    data: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(data)
    return data


def check_output(command: str, text: str) -> Any:
    """The parsed output of ``command`` (``images gc``), after validating it."""
    data = json.loads(text)
    assert data["format_version"] == FORMAT_VERSION
    full = schema()
    definition = full["x-commands"][command]
    one = {"$defs": full["$defs"], "$ref": f"#/$defs/{definition}"}
    jsonschema.Draft202012Validator(one).validate(data)
    jsonschema.Draft202012Validator(full).validate(data)
    return data
