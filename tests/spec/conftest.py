"""Shared helpers of the spec tests: small test plugins and a spec file writer.

The test plugins use their own names, so these tests do not depend on the built-in plugins.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from immutable_sdk.errors import SpecError
from immutable_sdk.plugin import hookimpl
from immutable_sdk.plugins import Plugins, load_plugins
from immutable_sdk.spec.load import load_spec
from immutable_sdk.spec.model import Spec

LOCATED = re.compile(r"^(?P<file>[^\n]+?):(?P<line>\d+):(?P<column>\d+): (?P<rest>.+)$")

SIZE = {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\d+%?$"}]}


class SpecTestPlugin:
    """A builder, strategies and a health check with schemas shaped like real plugins'."""

    @hookimpl
    def immutable_sdk_add_builders(self, registry: Any) -> None:
        registry.add(
            "test-builder",
            dict,
            schema={
                "type": "object",
                "required": ["builder", "template"],
                "properties": {
                    "builder": {"const": "test-builder"},
                    "template": {"type": "string", "format": "file"},
                    "vars": {"type": "object", "additionalProperties": {"type": "string"}},
                    "timeout": {"$ref": "#/$defs/duration"},
                },
                "$defs": {"duration": {"type": "string", "format": "duration"}},
            },
        )

    @hookimpl
    def immutable_sdk_add_strategies(self, registry: Any) -> None:
        registry.add(
            "steady",
            dict,
            schema={
                "properties": {
                    "type": {"const": "steady"},
                    "batch_size": SIZE,
                    "pause": {"type": ["string", "number"], "format": "duration"},
                }
            },
        )
        if "canary" not in registry:  # the core checks canary steps whoever implements it
            registry.add(
                "canary",
                dict,
                schema={
                    "properties": {
                        "type": {"const": "canary"},
                        "steps": {"type": "array", "items": {"type": "object"}},
                        "keep_previous": {},
                    }
                },
            )

    @hookimpl
    def immutable_sdk_add_health_checks(self, registry: Any) -> None:
        registry.add(
            "probe",
            dict,
            schema={
                "properties": {
                    "type": {"const": "probe"},
                    "url": {"type": "string", "pattern": "^https?://"},
                    "every": {"type": "string", "format": "duration"},
                },
                "required": ["type", "url"],
            },
        )


@pytest.fixture(scope="session")
def plugins() -> Plugins:
    return load_plugins([SpecTestPlugin()], autoload=False)


VALID = """\
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web:
    builder: test-builder
    template: web.pkr.hcl
    regions: [eu-west-1, us-east-1]
fleets:
  web:
    image: web
    instance_type: t3.small
    capacity: {min: 1, desired: 2, max: 3}
    strategy: {type: steady, batch_size: 25%, pause: 30s}
    health:
      checks:
        - {type: probe, url: "http://{private_ip}/"}
"""


class Writer:
    """Writes dedented files under a folder and returns their paths as strings."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, name: str, text: str = VALID, **files: str) -> str:
        for rel, content in {"web.pkr.hcl": "# template\n", **files}.items():
            p = self.root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(textwrap.dedent(content))
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return str(path)


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    return Writer(tmp_path)


ProblemsOf = Callable[..., list[str]]


@pytest.fixture
def problems_of(plugins: Plugins) -> ProblemsOf:
    """``problems_of(*files, environ=...)``: every problem line; fails if the spec loads."""

    def run(*files: str, environ: Mapping[str, str] | None = None) -> list[str]:
        with pytest.raises(SpecError) as info:
            load_spec(files, plugins=plugins, environ=environ or {})
        lines = [str(p) for p in info.value.problems]
        for line in lines:
            assert LOCATED.match(line) or ": " in line, line
        return lines

    return run


@pytest.fixture
def load(plugins: Plugins) -> Callable[..., Spec]:
    def run(*files: str, environ: Mapping[str, str] | None = None) -> Spec:
        return load_spec(files, plugins=plugins, environ=environ or {})

    return run


def only(lines: list[str], path: str) -> str:
    """The one problem line about ``path`` (the dotted path after the position)."""
    found = [ln for ln in lines if (m := LOCATED.match(ln)) and m["rest"].startswith(path + ": ")]
    assert len(found) == 1, f"expected one problem at {path}, got {found} in {lines}"
    return found[0]


def position(line: str) -> tuple[int, int]:
    m = LOCATED.match(line)
    assert m, line
    return int(m["line"]), int(m["column"])
