"""The plugin manager: built-ins, duplicates, misspelled hooks, broken third-party plugins."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from immutable_sdk.cli import main
from immutable_sdk.errors import ExitCode, PluginError
from immutable_sdk.plugin import hookimpl
from immutable_sdk.plugins import AUTOLOAD_ENV, BUILTIN_PLUGINS, load_plugins

# What the example specs and the README rely on.
EXPECTED_BUILTINS = {
    "builder": {"packer"},
    "strategy": {"rolling"},
    "health check": {"ec2", "elb", "cloudwatch-alarm"},
}


def test_builtins_are_registered() -> None:
    plugins = load_plugins(autoload=False)
    for module in BUILTIN_PLUGINS:
        if importlib.util.find_spec(module) is not None:
            assert plugins.manager.get_plugin(module) is not None, module
    names = {
        kind: {e.name for e in plugins.entries() if e.kind == kind} for kind in EXPECTED_BUILTINS
    }
    for kind, expected in EXPECTED_BUILTINS.items():
        assert expected <= names[kind], (kind, names[kind])
    for entry in plugins.entries():
        assert entry.plugin in BUILTIN_PLUGINS and entry.distribution is None
        assert entry.schema.get("additionalProperties") is False, entry.name


class Probe:
    @hookimpl
    def immutable_sdk_add_health_checks(self, registry: Any) -> None:
        registry.add("probe", dict, schema={"properties": {"type": {}}})


class ProbeAgain:
    @hookimpl
    def immutable_sdk_add_health_checks(self, registry: Any) -> None:
        registry.add("probe", list)


def test_a_duplicate_name_names_both_plugins() -> None:
    with pytest.raises(PluginError) as info:
        load_plugins([Probe(), ProbeAgain()], autoload=False)
    message = str(info.value)
    assert message.startswith("plugin 'extra-1-ProbeAgain': ")  # the later one is refused
    assert "health check 'probe' is already registered by plugin 'extra-0-Probe'" in message
    assert info.value.exit_code == ExitCode.INVALID


def test_a_plugin_cannot_take_a_builtin_name() -> None:
    class Rolling:
        @hookimpl
        def immutable_sdk_add_strategies(self, registry: Any) -> None:
            registry.add("rolling", dict)

    with pytest.raises(
        PluginError, match="'rolling' is already registered by plugin 'immutable_sdk"
    ):
        load_plugins([Rolling()], autoload=False)


def test_a_hook_that_does_not_exist_fails_at_start_up() -> None:
    class Misspelled:
        @hookimpl
        def immutable_sdk_add_healthchecks(self, registry: Any) -> None:
            raise AssertionError("never called")

    with pytest.raises(PluginError) as info:
        load_plugins([Misspelled()], autoload=False)
    assert str(info.value).startswith("plugin 'extra-0-Misspelled': implements a hook that does")
    assert "immutable_sdk_add_healthchecks" in str(info.value)


def test_a_register_hook_that_raises_is_wrapped() -> None:
    class Broken:
        @hookimpl
        def immutable_sdk_add_builders(self, registry: Any) -> None:
            raise KeyError("oops")

    with pytest.raises(PluginError, match=r"plugin 'extra-0-Broken': immutable_sdk_add_builders "):
        load_plugins([Broken()], autoload=False)


def _distribution(root: Path, name: str, module: str, source: str) -> None:
    """An installed distribution: a dist-info folder with an entry point, and its module."""
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[immutable_sdk]\n{name} = {module}\n")
    (root / f"{module}.py").write_text(source)


GOOD = """\
from immutable_sdk.plugin import hookimpl

@hookimpl
def immutable_sdk_add_strategies(registry):
    registry.add("all-at-once", dict, schema={"properties": {"type": {}}}, description="x")
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("isdk_test_")]:
        del sys.modules[name]


def test_a_third_party_distribution_is_loaded(site: Path) -> None:
    _distribution(site, "isdk-good", "isdk_test_good", GOOD)
    plugins = load_plugins(autoload=True)
    entry = plugins.strategies.get("all-at-once")
    assert (entry.plugin, entry.distribution) == ("isdk-good", "isdk-good 0.1")
    result = CliRunner().invoke(main, ["plugins", "-o", "json"], catch_exceptions=False)
    row = next(r for r in json.loads(result.stdout)["plugins"] if r["name"] == "all-at-once")
    assert (row["distribution"], row["version"], row["plugin"]) == ("isdk-good", "0.1", "isdk-good")


def test_autoload_can_be_disabled(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _distribution(site, "isdk-good", "isdk_test_good", GOOD)
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    assert "all-at-once" not in load_plugins().strategies


def test_a_plugin_that_fails_to_import_is_a_plugin_error(site: Path) -> None:
    _distribution(site, "isdk-broken", "isdk_test_broken", "raise RuntimeError('boom')\n")
    with pytest.raises(PluginError) as info:
        load_plugins(autoload=True)
    assert info.value.plugin == "isdk-broken"
    assert info.value.distribution == "isdk-broken 0.1"
    assert str(info.value) == (
        "plugin 'isdk-broken' (from isdk-broken 0.1): failed to import: RuntimeError('boom')"
    )
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "error: plugin 'isdk-broken' (from isdk-broken 0.1): failed to import: "
        "RuntimeError('boom')\n"
    )
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_third_party_hook_that_does_not_exist(site: Path) -> None:
    source = GOOD.replace("immutable_sdk_add_strategies", "immutable_sdk_add_strategys")
    _distribution(site, "isdk-typo", "isdk_test_typo", source)
    with pytest.raises(PluginError) as info:
        load_plugins(autoload=True)
    assert info.value.plugin == "isdk-typo" and info.value.distribution == "isdk-typo 0.1"
