"""The schema editors load: draft-07 (what yaml-language-server validates with), published as
docs/schema/spec-v1.json and named by the examples' ``# yaml-language-server: $schema=``
modeline. An editor offers the schema's properties (with their descriptions) as completions
and reports what the validator reports; both are checked here with a draft-07 validator."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from immutable_sdk.plugins import load_plugins
from immutable_sdk.spec.schema import composed_schema
from immutable_sdk.spec.schema_draft07 import draft07

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "docs" / "schema" / "spec-v1.json"
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.MULTILINE)
EXAMPLES = sorted(
    [*(ROOT / "specs").glob("examples/*.yaml"), *(ROOT / "specs").glob("migration/*.yaml")]
)
DRAFT_2019_PLUS = {
    "$defs",
    "dependentRequired",
    "dependentSchemas",
    "prefixItems",
    "unevaluatedProperties",
    "unevaluatedItems",
    "$anchor",
    "$dynamicRef",
}


def published() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(PUBLISHED.read_text())
    return data


def keywords(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*(keywords(x) for x in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set(node)
    for key, value in node.items():
        if key in ("properties", "definitions", "patternProperties"):
            found |= set().union(*(keywords(v) for v in value.values())) if value else set()
        else:
            found |= keywords(value)
    return found


def test_published_schema_is_draft_07_and_current() -> None:
    schema = published()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    assert not keywords(schema) & DRAFT_2019_PLUS
    assert not any(k.startswith("x-") for k in keywords(schema))
    assert schema == draft07(composed_schema(load_plugins(autoload=False)))


def test_examples_name_the_published_schema() -> None:
    named = 0
    for path in EXAMPLES:
        text = path.read_text()
        match = MODELINE.search(text.split("\n", 1)[0])
        if "# plugin:" in text.split("apiVersion", 1)[0]:
            continue  # a third-party plugin's keys: not in the built-in schema
        assert match, f"{path.name}: no yaml-language-server modeline on its first line"
        assert (path.parent / match.group(1)).resolve() == PUBLISHED
        named += 1
    assert named >= 7


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_an_editor_finds_no_error_in_the_examples(path: Path) -> None:
    if "# plugin:" in path.read_text().split("apiVersion", 1)[0]:
        pytest.skip("needs a third-party plugin's schema")
    document = yaml.safe_load(path.read_text())
    errors = list(jsonschema.Draft7Validator(published()).iter_errors(document))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_an_editor_reports_mistakes_where_they_are() -> None:
    document = yaml.safe_load((ROOT / "specs/examples/rolling.yaml").read_text())
    fleet = next(iter(document["fleets"].values()))
    fleet["capacity"]["desired"] = "three"
    fleet["health"]["timeout"] = "soon"
    fleet["strategy"]["batch_sise"] = 1
    document["fleetz"] = {}
    errors = {
        "/".join(map(str, e.absolute_path)): e.message
        for e in jsonschema.Draft7Validator(published()).iter_errors(document)
    }
    name = next(iter(document["fleets"]))
    assert f"fleets/{name}/capacity/desired" in errors
    assert "'soon' does not match" in errors[f"fleets/{name}/health/timeout"]
    assert any("batch_sise" in m for m in errors.values())
    assert any("fleetz" in m for m in errors.values())
    ok = jsonschema.Draft7Validator(published())
    fleet["health"]["timeout"] = "1h30m"  # compound durations are fine
    assert f"fleets/{name}/health/timeout" not in {
        "/".join(map(str, e.absolute_path)) for e in ok.iter_errors(document)
    }


def test_an_editor_has_completions_with_descriptions() -> None:
    schema = published()
    top = schema["properties"]
    assert {"apiVersion", "name", "region", "images", "fleets"} <= set(top)
    fleet = top["fleets"]["additionalProperties"]["properties"]
    assert {"image", "instance_type", "capacity", "strategy", "health"} <= set(fleet)
    described = [k for k, v in fleet.items() if v.get("description")]
    assert len(described) >= len(fleet) * 0.8, set(fleet) - set(described)
    # strategy: the built-in types are offered, and each one's keys once it is chosen
    types = fleet["strategy"]["properties"]["type"]["enum"]
    assert {"rolling", "blue-green", "canary"} <= set(types)
    rolling = schema["definitions"]["strategy.rolling"]["properties"]
    assert {"batch_size", "min_healthy"} <= set(rolling)
