"""The composed JSON Schema: valid for editors, and in agreement with validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker

from immutable_sdk.plugins import Plugins
from immutable_sdk.spec.model import Spec
from immutable_sdk.spec.schema import composed_schema

from .conftest import VALID, Writer


def test_the_composed_schema_is_a_valid_json_schema(plugins: Plugins) -> None:
    schema = composed_schema(plugins)
    Draft202012Validator.check_schema(schema)
    fleet = schema["properties"]["fleets"]["additionalProperties"]
    assert "steady" in fleet["properties"]["strategy"]["properties"]["type"]["enum"]
    assert (
        "test-builder"
        in schema["properties"]["images"]["additionalProperties"]["properties"]["builder"]["enum"]
    )
    for name in ("builder.test-builder", "strategy.steady", "health.probe"):
        assert schema["$defs"][name]["additionalProperties"] is False


def _editor_errors(schema: dict[str, Any], document: Any) -> list[str]:
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    return [e.message for e in validator.iter_errors(document)]


def test_the_schema_agrees_with_validation(
    plugins: Plugins, write: Writer, load: Callable[..., Spec]
) -> None:
    schema = composed_schema(plugins)
    assert _editor_errors(schema, yaml.safe_load(VALID)) == []
    load(write("spec.yaml"))
    for bad in (
        VALID.replace("batch_size: 25%", "batch_size: [1]"),
        VALID.replace("builder: test-builder", "builder: nope"),
        VALID.replace("instance_type: t3.small", "instance_typ: t3.small"),
        VALID.replace("url:", "uri:"),
    ):
        assert _editor_errors(schema, yaml.safe_load(bad)), bad


@pytest.mark.parametrize("editor", [True, False])
def test_schema_is_json(plugins: Plugins, editor: bool) -> None:
    import json

    from immutable_sdk.spec.schema import build_schema

    assert json.loads(json.dumps(build_schema(plugins, editor=editor)))
