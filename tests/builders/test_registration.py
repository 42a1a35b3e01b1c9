"""The built-in builders register through the plugin hooks with valid, closed schemas."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from immutable_sdk.plugins import load_plugins
from immutable_sdk.spec.formats import PROBLEMS, conforms

ARN = "arn:aws:imagebuilder:us-east-1:123456789012:"


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    builders = load_plugins(autoload=False).builders
    return {entry.name: entry.schema for entry in builders}


def test_the_three_builders_are_registered(schemas: dict[str, Any]) -> None:
    assert {"ami", "packer", "ec2-image-builder"} <= set(schemas)


@pytest.mark.parametrize("name", ["ami", "packer", "ec2-image-builder"])
def test_each_schema_is_closed_and_described(schemas: dict[str, Any], name: str) -> None:
    schema = schemas[name]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["builder"] == {**schema["properties"]["builder"], "const": name}
    for key, prop in schema["properties"].items():
        assert prop.get("description"), f"{name}.{key} has no description"


def valid(schema: dict[str, Any], block: dict[str, Any]) -> bool:
    return jsonschema.Draft202012Validator(schema, format_checker=format_checker()).is_valid(block)


def test_ami_blocks(schemas: dict[str, Any]) -> None:
    ami = schemas["ami"]
    assert valid(ami, {"builder": "ami", "id": "ami-0abc"})
    assert valid(ami, {"builder": "ami", "ids": {"us-east-1": "ami-0abc"}})
    assert valid(ami, {"builder": "ami", "filters": {"name": "g-*"}, "owners": ["self"]})
    assert not valid(ami, {"builder": "ami"})
    assert not valid(ami, {"builder": "ami", "id": "ami-0abc", "filters": {"name": "g-*"}})
    assert not valid(ami, {"builder": "ami", "id": "ami-0abc", "owners": ["self"]})
    assert not valid(ami, {"builder": "ami", "id": "not-an-ami"})


def test_image_builder_blocks(schemas: dict[str, Any]) -> None:
    ib = schemas["ec2-image-builder"]
    pipeline = {"builder": "ec2-image-builder", "pipeline": ARN + "image-pipeline/p"}
    recipe = {
        "builder": "ec2-image-builder",
        "recipe": ARN + "image-recipe/r/1.0.0",
        "infrastructure": ARN + "infrastructure-configuration/i",
    }
    assert valid(ib, pipeline) and valid(ib, recipe)
    assert valid(ib, {**recipe, "distribution": ARN + "distribution-configuration/d"})
    assert not valid(ib, {**pipeline, **recipe})
    assert not valid(ib, {"builder": "ec2-image-builder", "recipe": ARN + "image-recipe/r/1"})


def test_packer_blocks(schemas: dict[str, Any]) -> None:
    packer = schemas["packer"]
    block = {"builder": "packer", "template": "t.pkr.hcl", "vars": {"v": "1", "n": 2}}
    assert valid(packer, {**block, "timeout": "2h", "regions": ["eu-west-1"], "retain": 3})
    assert not valid(packer, {"builder": "packer"})
    assert not valid(packer, {**block, "vars": {"nested": {"no": "maps"}}})
    assert not valid(packer, {**block, "tempalte": "typo"})


def format_checker() -> jsonschema.FormatChecker:
    """The SDK's value formats (durations, sizes, regions...), as validation checks them."""
    checker = jsonschema.FormatChecker(formats=())
    for name in PROBLEMS:
        checker.checks(name)(conforms(name))
    return checker
