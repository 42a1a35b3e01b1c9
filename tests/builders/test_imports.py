"""Built-in builders use only what a third-party plugin could: ``immutable_sdk.plugin``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import immutable_sdk.builders

BUILDERS = Path(immutable_sdk.builders.__file__).parent
MODULES = sorted(p for p in BUILDERS.glob("*.py") if p.name != "__init__.py")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_builders_import_only_the_plugin_api_and_each_other(path: Path) -> None:
    siblings = {f".{p.stem}" for p in MODULES}
    for name in imported(path):
        if name.startswith("."):
            assert name in siblings, f"{path.name} imports {name}"
        elif name.split(".")[0] == "immutable_sdk":
            assert name == "immutable_sdk.plugin", f"{path.name} imports {name}"
        else:
            assert name.split(".")[0] not in ("boto3", "botocore"), f"{path.name} imports {name}"
