"""The package's shape: no import cycles, a short top level, contracts that stay complete.

The layer rules themselves are import-linter contracts (``[tool.importlinter]`` in
pyproject.toml), run by ``scripts/test``; these tests hold what a contract cannot say.
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

import immutable_sdk

PACKAGE = Path(immutable_sdk.__file__).parent
PYPROJECT = PACKAGE.parents[1] / "pyproject.toml"


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(graph.find_modules_directly_imported_by(module)):
            if not other.startswith("immutable_sdk"):
                continue
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                group.append(other)
                if other == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module.startswith("immutable_sdk") and module not in index:
            visit(module)
    return sorted(found)


def test_no_module_imports_itself_back_through_others() -> None:
    # Function-level imports count (grimp reads every import statement); imports under
    # TYPE_CHECKING do not.
    graph = grimp.build_graph("immutable_sdk", exclude_type_checking_imports=True)
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("immutable_sdk.a", "immutable_sdk.b", "immutable_sdk.c"):
        graph.add_module(module)
    graph.add_import(importer="immutable_sdk.a", imported="immutable_sdk.b")
    graph.add_import(importer="immutable_sdk.b", imported="immutable_sdk.a")
    graph.add_import(importer="immutable_sdk.b", imported="immutable_sdk.c")
    assert import_cycles(graph) == [["immutable_sdk.a", "immutable_sdk.b"]]


def top_level_modules() -> set[str]:
    names = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()
    }
    return {n for n in names if not n.startswith("_")}


def test_the_top_level_holds_public_faces_and_shared_vocabulary_only() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_")}
    assert len(modules) <= 15, sorted(modules)


def test_the_built_in_plugin_contract_forbids_every_other_top_level_module() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if "Built-in plugins" in c["name"]]
    forbidden = {m.split(".", 1)[1] for m in contract["forbidden_modules"] if "." in m}
    plugin_packages = {m.split(".", 1)[1] for m in contract["source_modules"]}
    assert forbidden == top_level_modules() - plugin_packages - {"plugin"}


def named_types(hint: object) -> set[type]:
    """The classes a type hint names (``list[FleetStatus] | None`` -> FleetStatus...)."""
    import typing

    found: set[type] = set()
    args = typing.get_args(hint)
    if args:
        for arg in args:
            found |= named_types(arg)
        origin = typing.get_origin(hint)
        if isinstance(origin, type) and origin.__module__ != "builtins":
            found.add(origin)
    elif isinstance(hint, type) and hint.__module__ not in ("builtins", "types"):
        found.add(hint)
    return found


def test_what_public_methods_return_is_public_and_typed() -> None:
    import inspect
    import typing

    from immutable_sdk import Engine, plugin

    names = {name: getattr(immutable_sdk, name) for name in immutable_sdk.__all__}
    # public too: what immutable_sdk.plugin exports (Artifact, for Engine.build)
    public = set(names.values()) | {getattr(plugin, name) for name in plugin.__all__}
    leaks = []
    for name, method in inspect.getmembers(Engine, inspect.isfunction):
        if name.startswith("_"):
            continue
        hints = typing.get_type_hints(method, localns=names)  # names behind TYPE_CHECKING
        assert "return" in hints, f"Engine.{name} has no return annotation"
        for cls in named_types(hints["return"]):
            if cls.__module__.startswith("immutable_sdk") and cls not in public:
                leaks.append(f"Engine.{name} returns {cls.__module__}.{cls.__qualname__}")
    assert not leaks, "\n".join(leaks)
