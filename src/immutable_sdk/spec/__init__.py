"""Spec loading and validation: YAML with locations, overlays, ${VAR}, schema, semantic checks."""

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

__all__ = [
    "Capacity",
    "FleetSpec",
    "HealthSpec",
    "ImageSpec",
    "PluginConfig",
    "SecuritySpec",
    "Spec",
    "StateSpec",
]
