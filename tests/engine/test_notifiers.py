"""The spec's ``notifiers``: validated by their plugin's schema, hooked in while an engine runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from immutable_sdk.errors import PluginError, SpecError
from immutable_sdk.plugin import Registry, hookimpl
from immutable_sdk.plugins import load_plugins
from immutable_sdk.spec.load import load_spec

from .conftest import AMI_V1, AMI_V2, World, fleet_spec

SCHEMA = {
    "type": "object",
    "required": ["type", "label"],
    "properties": {
        "type": {"const": "recorder", "description": "Selects this notifier."},
        "label": {"type": "string", "description": "Prefixed to every record."},
    },
    "additionalProperties": False,
}


class Recorder:
    def __init__(self, config: Mapping[str, Any], log: list[str]) -> None:
        self.label = config["label"]
        self.log = log

    @hookimpl
    def immutable_sdk_rollout_started(self, rollout: Any) -> None:
        self.log.append(f"{self.label}:started:{rollout.fleet}")

    @hookimpl
    def immutable_sdk_step_finished(self, rollout: Any, step: Any, outcome: str) -> None:
        self.log.append(f"{self.label}:{step.kind}:{outcome}")

    @hookimpl
    def immutable_sdk_rollout_finished(self, rollout: Any, outcome: str) -> None:
        self.log.append(f"{self.label}:finished:{outcome}")

    def close(self) -> None:
        self.log.append(f"{self.label}:closed")


class RecorderPlugin:
    def __init__(self) -> None:
        self.log: list[str] = []

    @hookimpl
    def immutable_sdk_add_notifiers(self, registry: Registry[Any]) -> None:
        registry.add(
            "recorder",
            lambda config: Recorder(config, self.log),
            schema=SCHEMA,
            description="Records lifecycle events in a list.",
        )


NOTIFIERS = "notifiers:\n  - {type: recorder, label: a}\n  - {type: recorder, label: b}\n"


def test_every_notifier_hears_the_rollout_and_is_closed_with_the_engine(world: World) -> None:
    plugin = RecorderPlugin()
    world.extra_plugins.append(plugin)
    world.write(fleet_spec(desired=2, strategy="{type: rolling, batch_size: 2}") + NOTIFIERS)
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
        assert set(plugin.log[:2]) == {"a:started:web", "b:started:web"}
        assert "a:closed" not in plugin.log
    assert plugin.log[-2:] == ["a:closed", "b:closed"]  # in the spec's order
    assert "a:finished:promoted" in plugin.log and "b:finished:promoted" in plugin.log
    steps = [e.split(":", 1)[1] for e in plugin.log if e.startswith("a:")]
    assert steps == ["started:web", "launch:ok", "gate:ok", "finished:promoted", "closed"]

    # Closed notifiers are off the plugin manager: a second engine's rollout is theirs alone.
    plugin.log.clear()
    with world.engine(AMI_V2) as engine:
        assert engine.apply().ok
    assert plugin.log.count("a:finished:promoted") == 1


def test_notifier_blocks_are_validated_by_their_plugins_schema(spec_writer: Any) -> None:
    path = spec_writer(
        """
        apiVersion: immutable-sdk/v1
        name: shop
        region: us-east-1
        notifiers:
          - {type: recorder, label: a, colour: red}
          - {type: recorded, label: b}
          - {type: recorder}
        """
    )
    plugins = load_plugins([RecorderPlugin()], autoload=False)
    with pytest.raises(SpecError) as info:
        load_spec([path], plugins=plugins)
    messages = [str(p) for p in info.value.problems]
    assert len(messages) == 3, messages
    assert ":5:32: notifiers[0].colour: unknown key" in messages[0]
    assert "notifiers[1].type: unknown notifier 'recorded'" in messages[1]
    assert "did you mean 'recorder'?" in messages[1]
    assert "notifiers[2]" in messages[2] and "label" in messages[2]


def test_a_notifier_whose_factory_fails_is_a_plugin_error(world: World) -> None:
    class Broken:
        @hookimpl
        def immutable_sdk_add_notifiers(self, registry: Registry[Any]) -> None:
            registry.add("recorder", lambda config: 1 / 0, schema=SCHEMA)

    world.extra_plugins.append(Broken())
    world.write(fleet_spec(desired=1) + NOTIFIERS)
    with pytest.raises(PluginError, match=r"notifier 'recorder' \(.*spec.yaml:\d+:\d+\) failed"):
        world.engine(AMI_V1)
