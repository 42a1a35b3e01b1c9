"""The validated spec as frozen dataclasses: what the planner, engine and plugins read.

Built by ``immutable_sdk.spec.load_spec`` only after the whole document validated. Plugin blocks
(an image's builder settings, a strategy's or a health check's settings) stay as read-only
mappings in ``config``: their shape belongs to the plugin and its JSON Schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import Location, SpecProblem


@dataclass(frozen=True)
class PluginConfig:
    """A block handled by a plugin: ``type`` (or ``builder``) names it, ``config`` is the rest.

    ``config`` holds the whole block as written (durations and sizes still as strings), with
    relative paths left as written; ``base_dir`` is the folder of the file that named them.
    """

    type: str
    config: Mapping[str, Any] = field(default_factory=dict)
    base_dir: Path = Path(".")
    location: Location = field(default_factory=lambda: Location("<spec>"))


@dataclass(frozen=True)
class ImageSpec:
    name: str
    builder: str
    config: Mapping[str, Any]  # the image's whole block, builder settings included
    regions: tuple[str, ...]  # always includes the spec's region, first
    retain: int | None
    base_dir: Path
    location: Location = field(default_factory=lambda: Location("<spec>"))


# ``metric`` of a target-tracking policy -> the Auto Scaling predefined metric type
TARGET_TRACKING_METRICS = {
    "cpu": "ASGAverageCPUUtilization",
    "network-in": "ASGAverageNetworkIn",
    "network-out": "ASGAverageNetworkOut",
}


@dataclass(frozen=True)
class TargetTracking:
    """A target-tracking scaling policy the SDK keeps on the fleet's group."""

    name: str
    metric: str  # a key of TARGET_TRACKING_METRICS
    target: float
    disable_scale_in: bool = False
    warmup: float | None = None  # seconds (EstimatedInstanceWarmup)


@dataclass(frozen=True)
class Capacity:
    min: int
    desired: int  # with ``managed``: min, the size a new group starts with
    max: int
    # ``desired: managed``: scaling policies own the desired capacity; the SDK keeps it
    # within min..max and sizes rollouts from the live value instead of resetting it.
    managed: bool = False
    target_tracking: tuple[TargetTracking, ...] = ()

    def wanted(self, live: int | None) -> int:
        """The desired capacity the SDK aims for, given the group's live one (None: no group)."""
        if not self.managed:
            return self.desired
        if live is None:
            return self.desired
        return min(max(live, self.min), self.max)


@dataclass(frozen=True)
class HealthSpec:
    timeout: float = 600.0  # seconds a gate may take before it fails as timed out
    interval: float = 10.0  # seconds between polls of a gate, before backoff
    grace: float = 0.0  # seconds after launch before checks count
    checks: tuple[PluginConfig, ...] = ()


@dataclass(frozen=True)
class SecuritySpec:
    """Launch template security defaults; each may be turned off only explicitly, by name."""

    imdsv2_required: bool = True
    encrypt_volumes: bool = True
    public_ip: bool = False


@dataclass(frozen=True)
class FleetSpec:
    name: str
    image: str  # a key of Spec.images
    instance_type: str
    capacity: Capacity
    strategy: PluginConfig
    health: HealthSpec
    subnets: tuple[str, ...] = ()  # ids (subnet-...) or Name tags
    security_groups: tuple[str, ...] = ()  # ids (sg-...) or group names / Name tags
    user_data: Path | None = None  # resolved against the file that named it
    target_groups: tuple[str, ...] = ()  # ARNs or names
    traffic: Mapping[str, Any] | None = None  # blue/green slots and Route 53 record
    rollback_automatic: bool = True
    key_name: str | None = None
    iam_instance_profile: str | None = None
    security: SecuritySpec = SecuritySpec()
    max_lifetime: float | None = None  # seconds
    depends_on: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    location: Location = field(default_factory=lambda: Location("<spec>"))
    regions: tuple[str, ...] = ()  # where it deploys; empty: the spec's region


@dataclass(frozen=True)
class WaveSpec:
    """One wave of an apply: the fleets (and regions) it takes, in order after the previous."""

    name: str
    fleets: tuple[str, ...] = ("*",)  # fleet names or glob patterns
    regions: tuple[str, ...] = ("*",)  # region names or glob patterns
    bake: float = 0.0  # seconds to watch the wave's changed fleets before the next wave
    max_regions_in_flight: int = 1
    stop_on_failure: bool = True
    location: Location = field(default_factory=lambda: Location("<spec>"))


@dataclass(frozen=True)
class StateSpec:
    backend: str = "local"  # "local" (SQLite) or "dynamodb"
    path: Path = Path(".immutable/state.db")  # local: resolved against the first spec file
    table: str | None = None  # dynamodb
    region: str | None = None  # dynamodb; defaults to the spec's region
    # where ``state.backend`` is written (the first spec file when the spec has no state block)
    location: Location = field(default_factory=lambda: Location("<spec>"), compare=False)


@dataclass(frozen=True)
class Spec:
    api_version: str
    name: str
    region: str
    state: StateSpec
    images: Mapping[str, ImageSpec]
    fleets: Mapping[str, FleetSpec]
    waves: tuple[WaveSpec, ...] = ()  # empty: every fleet in one wave
    files: tuple[Path, ...] = ()
    document: Mapping[str, Any] = field(default_factory=dict, repr=False)  # merged, interpolated
    notifiers: tuple[PluginConfig, ...] = ()  # the top-level ``notifiers`` list
    # what loading found doubtful but not invalid (a file outside the spec's folder)
    warnings: tuple[SpecProblem, ...] = field(default=(), repr=False, compare=False)

    # --- regions: a fleet may deploy to several; each (fleet, region) is one unit -------------

    def regions_of(self, fleet: FleetSpec) -> tuple[str, ...]:
        """The regions ``fleet`` deploys to (the spec's region unless it lists others)."""
        return fleet.regions or (self.region,)

    @property
    def regions(self) -> tuple[str, ...]:
        """The spec's region first, then every other region a fleet deploys to."""
        found = dict.fromkeys([self.region])
        for fleet in self.fleets.values():
            found.update(dict.fromkeys(self.regions_of(fleet)))
        return tuple(found)

    @property
    def multi_region(self) -> bool:
        """True when some fleet deploys outside the spec's region."""
        return self.regions != (self.region,)

    def unit_key(self, fleet: str, region: str | None = None) -> str:
        """The name of ``fleet`` in ``region`` in state, events and results: the fleet's name
        in the spec's region (so single-region specs keep their keys), ``fleet@region`` else."""
        return fleet if region is None or region == self.region else f"{fleet}@{region}"

    def units(self) -> list[tuple[str, str, str]]:
        """Every (key, fleet, region) the spec deploys, by fleet, then in ``regions`` order."""
        order = {r: i for i, r in enumerate(self.regions)}
        return [
            (self.unit_key(name, region), name, region)
            for name, fleet in self.fleets.items()
            for region in sorted(self.regions_of(fleet), key=order.__getitem__)
        ]

    def for_region(self, region: str) -> Spec:
        """This spec as seen from one region: ``region`` as its region, only the fleets that
        deploy there (each listing that region alone), and no waves (an apply orders regions)."""
        fleets = {
            name: replace(fleet, regions=(region,))
            for name, fleet in self.fleets.items()
            if region in self.regions_of(fleet)
        }
        return replace(self, region=region, fleets=fleets, waves=())
