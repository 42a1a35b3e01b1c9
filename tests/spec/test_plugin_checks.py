"""Plugins' own checks of their blocks (``registry.add(..., check=...)``), run by validation."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from immutable_sdk.errors import PluginError, SpecError
from immutable_sdk.plugin import CheckContext, ConfigProblem, hookimpl
from immutable_sdk.plugins import load_plugins
from immutable_sdk.spec.load import load_spec

from .conftest import LOCATED, VALID, SpecTestPlugin, Writer

SEEN: list[tuple[dict[str, Any], dict[str, Any]]] = []


def check(config: Mapping[str, Any], context: CheckContext) -> Iterator[ConfigProblem]:
    fleet = context.fleet
    SEEN.append((dict(config), {**fleet, "base_dir": context.base_dir}))
    if config.get("explode"):
        raise KeyError("explode")
    if config["size"] > fleet["capacity"]["max"]:
        yield ConfigProblem(("size",), f"size {config['size']} is more than capacity.max")
    for i, name in enumerate(config.get("names", ())):
        if name.startswith("-"):
            yield ConfigProblem(("names", i), f"name {name!r} starts with '-'")


class CheckedPlugin:
    @hookimpl
    def immutable_sdk_add_strategies(self, registry: Any) -> None:
        registry.add(
            "checked",
            dict,
            schema={
                "properties": {
                    "type": {"const": "checked"},
                    "size": {"type": "integer"},
                    "names": {"type": "array", "items": {"type": "string"}},
                    "explode": {"type": "boolean"},
                    "pause": {"type": "string", "format": "duration"},
                },
                "required": ["size"],
            },
            check=check,
        )


@pytest.fixture
def load_with_check() -> Any:
    plugins = load_plugins([SpecTestPlugin(), CheckedPlugin()], autoload=False)
    SEEN.clear()
    return lambda path: load_spec([path], plugins=plugins, environ={})


def problems(load: Any, path: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load(path)
    return [str(p) for p in info.value.problems]


def test_problems_are_located_at_their_keys_with_the_rest(
    write: Writer, load_with_check: Any
) -> None:
    strategy = "{type: checked, size: 5, names: [ok, -bad], pause: 30s}"
    f = write("spec.yaml", VALID.replace("{type: steady, batch_size: 25%, pause: 30s}", strategy))
    lines = problems(load_with_check, f)
    assert lines == [
        f"{f}:14:37: fleets.web.strategy.size: size 5 is more than capacity.max",
        f"{f}:14:52: fleets.web.strategy.names[1]: name '-bad' starts with '-'",
    ]
    assert all(LOCATED.match(line) for line in lines)
    config, fleet = SEEN[-1]
    assert config["size"] == 5 and fleet["capacity"] == {"min": 1, "desired": 2, "max": 3}
    assert fleet["base_dir"] == write.root  # where the block's relative paths start


def test_a_block_with_schema_problems_is_still_checked_where_valid(
    write: Writer, load_with_check: Any
) -> None:
    strategy = "{type: checked, size: 5, names: [-bad], pause: soon}"
    f = write("spec.yaml", VALID.replace("{type: steady, batch_size: 25%, pause: 30s}", strategy))
    lines = problems(load_with_check, f)
    assert [line.split(": ", 2)[1] for line in lines] == [
        "fleets.web.strategy.size",
        "fleets.web.strategy.names[0]",
        "fleets.web.strategy.pause",
    ]


def test_a_check_that_raises_on_a_valid_block_names_its_plugin(
    write: Writer, load_with_check: Any
) -> None:
    strategy = "{type: checked, size: 1, explode: true}"
    f = write("spec.yaml", VALID.replace("{type: steady, batch_size: 25%, pause: 30s}", strategy))
    with pytest.raises(PluginError, match=r"plugin '.*': its check of strategy 'checked' failed"):
        load_with_check(f)
    # on a block the schema refused, the exception is the schema problem's consequence
    f = write(
        "bad.yaml",
        VALID.replace(
            "{type: steady, batch_size: 25%, pause: 30s}",
            "{type: checked, size: 1, explode: true, pause: soon}",
        ),
    )
    assert [line.split(": ", 2)[1] for line in problems(load_with_check, f)] == [
        "fleets.web.strategy.pause"
    ]


def test_a_defaulted_block_is_reported_once_where_it_is_written(
    write: Writer, load_with_check: Any
) -> None:
    text = VALID.replace(
        "fleets:\n", "defaults:\n  strategy: {type: checked, size: 9}\nfleets:\n"
    ).replace("    strategy: {type: steady, batch_size: 25%, pause: 30s}\n", "")
    text += "  api:\n    image: web\n    instance_type: t3.small\n    capacity: {min: 1, max: 2}\n"
    f = write("spec.yaml", text)
    assert problems(load_with_check, f) == [
        f"{f}:10:35: defaults.strategy.size: size 9 is more than capacity.max"
    ]
