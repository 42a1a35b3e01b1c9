"""Plugins use only the public plugin API: what a third-party distribution could import.

Every module of the built-in plugin packages (builders, strategies, health checks, analysis
providers) and of the
distributions under ``plugins/`` may import from the SDK only ``immutable_sdk.plugin``, plus
sibling modules of its own package (a relative import that stays inside the package). Nothing
imports boto3 or botocore: plugins get AWS clients from ``ctx.client(...)``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import immutable_sdk

SDK = Path(immutable_sdk.__file__).parent
ROOT = Path(__file__).resolve().parents[1]
BUILTIN_PACKAGES = ("builders", "strategies", "health", "analysis")
ALLOWED_SDK_MODULES = {"immutable_sdk.plugin"}
FORBIDDEN_ROOTS = {"boto3", "botocore"}


def plugin_modules() -> Iterator[tuple[Path, str]]:
    """(file, dotted package) of every module that is plugin code."""
    for package in BUILTIN_PACKAGES:
        for path in sorted((SDK / package).rglob("*.py")):
            parts = path.relative_to(SDK.parent).with_suffix("").parts
            yield path, ".".join(parts[:-1])
    for src in sorted(ROOT.glob("plugins/*/src")):
        for path in sorted(src.rglob("*.py")):
            parts = path.relative_to(src).with_suffix("").parts
            yield path, ".".join(parts[:-1])


MODULES = list(plugin_modules())


def imports(path: Path, package: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.lineno, node.module or ""
                continue
            base = package.split(".")
            if node.level > 1:
                base = base[: -(node.level - 1)]
            prefix = ".".join(base)
            if node.module:
                yield node.lineno, f"{prefix}.{node.module}"
            else:  # from . import sibling
                for alias in node.names:
                    yield node.lineno, f"{prefix}.{alias.name}"


def test_the_walk_finds_every_kind_of_plugin() -> None:
    names = {f"{pkg}.{p.stem}" for p, pkg in MODULES}
    assert "immutable_sdk.strategies.rolling" in names
    assert "immutable_sdk.health.http" in names
    assert "immutable_sdk.builders.packer" in names
    assert "immutable_sdk.analysis.cloudwatch" in names
    assert any(n.startswith("immutable_sdk_linear.") for n in names), sorted(names)
    assert any(n.startswith("immutable_sdk_webhook.") for n in names), sorted(names)


@pytest.mark.parametrize(
    ("path", "package"), MODULES, ids=[str(p.relative_to(ROOT)) for p, _ in MODULES]
)
def test_plugin_code_imports_only_the_plugin_api(path: Path, package: str) -> None:
    bad = []
    for line, name in imports(path, package):
        root = name.split(".")[0]
        where = f"{path.relative_to(ROOT)}:{line}"
        if root in FORBIDDEN_ROOTS:
            bad.append(f"{where}: imports {name} (use ctx.client(...) instead)")
        elif root == "immutable_sdk" and name not in ALLOWED_SDK_MODULES:
            inside = name.startswith(package + ".") and package != "immutable_sdk"
            if not inside:
                bad.append(f"{where}: imports {name}; plugins import only immutable_sdk.plugin")
    assert not bad, "\n".join(bad)


def test_the_check_catches_a_private_import(tmp_path: Path) -> None:
    module = tmp_path / "sneaky.py"
    module.write_text(
        "from immutable_sdk.plugin import hookimpl\n"
        "from ..rollout import RolloutRunner\n"
        "from .digest import x\n"
    )
    found = [name for _, name in imports(module, "immutable_sdk.builders")]
    assert found == [
        "immutable_sdk.plugin",
        "immutable_sdk.rollout",
        "immutable_sdk.builders.digest",
    ]
