"""Spec loading and validation: YAML with locations, overlays, ${VAR}, schema, semantic checks.

``load_spec`` is imported lazily: the model is needed by ``immutable_sdk.plugin`` (which the
loader itself imports), and ``import immutable_sdk`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .model import (
    Capacity,
    FleetSpec,
    HealthSpec,
    ImageSpec,
    PluginConfig,
    SecuritySpec,
    Spec,
    StateSpec,
)

if TYPE_CHECKING:
    from .load import load_spec
    from .schema import composed_schema


def __getattr__(name: str) -> Any:
    if name == "load_spec":
        from .load import load_spec

        return load_spec
    if name == "composed_schema":
        from .schema import composed_schema

        return composed_schema
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Capacity",
    "FleetSpec",
    "HealthSpec",
    "ImageSpec",
    "PluginConfig",
    "SecuritySpec",
    "Spec",
    "StateSpec",
    "composed_schema",
    "load_spec",
]
