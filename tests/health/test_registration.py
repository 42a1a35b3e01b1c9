"""The built-in health checks register through the plugin hooks with closed, described schemas."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import immutable_sdk.health
from immutable_sdk.plugins import load_plugins
from immutable_sdk.spec.formats import PROBLEMS, conforms

BUILTIN = ("cloudwatch-alarm", "ec2", "elb", "http")


@pytest.fixture(scope="module")
def registry() -> Any:
    return load_plugins(autoload=False).health_checks


def test_every_builtin_check_is_registered(registry: Any) -> None:
    assert set(BUILTIN) <= set(registry.names())
    for name in BUILTIN:
        entry = registry.get(name)
        assert entry.plugin.startswith("immutable_sdk.health.")
        assert entry.description


@pytest.mark.parametrize("name", BUILTIN)
def test_schemas_are_closed_and_described(registry: Any, name: str) -> None:
    schema = registry.get(name).schema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["type"]["const"] == name
    assert "type" in schema["required"]
    for prop, sub in schema["properties"].items():
        assert sub.get("description"), f"{name}.{prop} has no description"
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors({"type": name, "surprise": 1}))
    assert list(validator.iter_errors({"type": "other"}))


@pytest.mark.parametrize(
    ("config", "valid"),
    [
        ({"type": "ec2"}, True),
        ({"type": "elb", "unhealthy_threshold": 2}, True),
        ({"type": "elb", "unhealthy_threshold": 0}, False),
        ({"type": "http", "url": "http://{private_ip}:8080/healthz"}, True),
        (
            {
                "type": "http",
                "url": "https://{public_ip}/",
                "expect_status": [200, 204],
                "body_regex": "ok",
                "successes": 3,
                "failures": 2,
                "request_timeout": "1500ms",
                "verify_tls": False,
            },
            True,
        ),
        ({"type": "http"}, False),
        ({"type": "http", "url": "ftp://x/"}, False),
        ({"type": "http", "url": "http://x/", "expect_status": 700}, False),
        ({"type": "http", "url": "http://x/", "request_timeout": "soon"}, False),
        ({"type": "cloudwatch-alarm", "alarms": ["web-5xx"]}, True),
        ({"type": "cloudwatch-alarm", "alarms": []}, False),
        ({"type": "cloudwatch-alarm", "alarms": ["a"], "insufficient_data": "maybe"}, False),
    ],
)
def test_schemas_accept_and_refuse(registry: Any, config: dict[str, Any], valid: bool) -> None:
    validator = jsonschema.Draft202012Validator(
        registry.get(config["type"]).schema, format_checker=format_checker()
    )
    assert (not list(validator.iter_errors(config))) is valid
    if valid:
        assert registry.get(config["type"]).factory(config) is not None


def test_health_modules_import_only_the_plugin_api_from_the_sdk() -> None:
    folder = Path(immutable_sdk.health.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""] if node.level == 0 else [f".{node.module}"]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                assert not module.startswith("."), f"{path.name}: relative import {module}"
                if module.startswith("immutable_sdk"):
                    assert module == "immutable_sdk.plugin", f"{path.name} imports {module}"
                assert not module.startswith(("boto3", "botocore")), f"{path.name}: {module}"


def format_checker() -> jsonschema.FormatChecker:
    """The SDK's value formats (durations, sizes, regions...), as validation checks them."""
    checker = jsonschema.FormatChecker(formats=())
    for name in PROBLEMS:
        checker.checks(name)(conforms(name))
    return checker
