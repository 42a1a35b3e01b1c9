"""Security tests reuse the engine tests' seeded emulator account (``World``)."""

from __future__ import annotations

from engine.conftest import AMI_V1, AMI_V2, World, fleet_spec, world

__all__ = ["AMI_V1", "AMI_V2", "World", "fleet_spec", "world"]
