"""Everything a plugin author needs, and the only module built-in plugins import from the SDK.

A plugin is a module or object with ``@hookimpl`` functions named after the hookspecs in
``immutable_sdk.hookspecs``. Register hooks receive a ``Registry`` and call ``registry.add``;
factories receive the plugin's (already validated) config block and return the plugin object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

import pluggy

from .bounded_http import HttpAnswer, http_request, proxy_from_environment
from .clock import Clock
from .coalesce import Coalescer
from .errors import (
    AwsError,
    BuildError,
    GateFailed,
    ImmutableSdkError,
    PluginError,
    SpecError,
)
from .lifecycle import (
    Analyze,
    Bake,
    Event,
    Gate,
    Launch,
    Pause,
    Phase,
    Provision,
    Retire,
    Scale,
    ShiftTraffic,
    Step,
)
from .redaction import redact_text, register_secret
from .spec.model import FleetSpec, ImageSpec, PluginConfig
from .units import Size, parse_duration, parse_size


def get_logger(**context: Any) -> Any:
    """A structlog logger bound to ``context``, through the SDK's logging (and its redaction).

    Imported on first use: loading a spec or the CLI's commands must not pay for structlog.
    """
    from .logs import get_logger as sdk_logger

    return sdk_logger(**context)


PROJECT = "immutable_sdk"
hookimpl = pluggy.HookimplMarker(PROJECT)

# Tags on every AWS resource the SDK creates (DESIGN.md section 6).
TAG_PROJECT = "immutable-sdk:project"
TAG_FLEET = "immutable-sdk:fleet"
TAG_RELEASE = "immutable-sdk:release"
TAG_ROLLOUT = "immutable-sdk:rollout"
TAG_SLOT = "immutable-sdk:slot"
# Lineage tags on golden images.
TAG_IMAGE = "immutable-sdk:image"
TAG_DIGEST = "immutable-sdk:digest"
TAG_BUILT_AT = "immutable-sdk:built-at"
TAG_BUILDER = "immutable-sdk:builder"
TAG_SOURCE_AMI = "immutable-sdk:source-ami"


class PluginContext(Protocol):
    """What the engine hands a plugin: time, logging, AWS clients and the spec's surroundings."""

    @property
    def clock(self) -> Clock: ...

    @property
    def project(self) -> str: ...

    @property
    def region(self) -> str: ...

    @property
    def endpoint_url(self) -> str | None:
        """The AWS endpoint override (sandbox or AWS_ENDPOINT_URL), None for real AWS."""

    def client(self, service: str, region: str | None = None) -> Any:
        """A boto3 client for ``service`` (counted, retried, pointed at the right endpoint)."""

    def emit(self, kind: str, **data: Any) -> None:
        """Emit a structured event (shown live, journaled where it belongs)."""

    def credentials(self) -> Mapping[str, str]:
        """Environment variables carrying the session's AWS credentials, for subprocesses."""


@dataclass(frozen=True)
class Artifact:
    """What a builder produced or found: an AMI per region and its lineage."""

    image: str
    builder: str
    digest: str
    amis: Mapping[str, str]  # region -> AMI id
    lineage: Mapping[str, str] = field(default_factory=dict)
    built: bool = False  # True when this run built it, False when reused
    # region -> the image's identity there, for builders whose ``digest`` covers every region
    # (adding a region must not change the releases of the regions that had the image).
    region_digests: Mapping[str, str] = field(default_factory=dict)

    def ami(self, region: str) -> str:
        try:
            return self.amis[region]
        except KeyError:
            raise BuildError(self.image, f"no AMI in region {region}") from None

    def digest_in(self, region: str) -> str:
        """What identifies the image in ``region``: its digest there, else ``digest``."""
        return self.region_digests.get(region, self.digest)


class HealthStatus(str, Enum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    PENDING = "pending"


@dataclass(frozen=True)
class Target:
    """An instance under a health check."""

    instance_id: str
    private_ip: str | None = None
    public_ip: str | None = None
    release: str | None = None
    launched_at: float | None = None  # epoch seconds
    lifecycle_state: str = "InService"


@dataclass(frozen=True)
class HealthReport:
    """A health check's verdict over all targets; ``details`` per instance (or alarm)."""

    status: HealthStatus
    details: Mapping[str, str] = field(default_factory=dict)
    summary: str = ""

    @classmethod
    def healthy(cls, summary: str = "", **details: str) -> HealthReport:
        return cls(HealthStatus.HEALTHY, details, summary)

    @classmethod
    def unhealthy(cls, summary: str, **details: str) -> HealthReport:
        return cls(HealthStatus.UNHEALTHY, details, summary)

    @classmethod
    def pending(cls, summary: str = "", **details: str) -> HealthReport:
        return cls(HealthStatus.PENDING, details, summary)


@dataclass(frozen=True)
class GateTargets:
    """What a gate judges: the target release's instances plus the fleet's wiring."""

    fleet: str
    release: str
    instances: Sequence[Target]
    target_groups: Sequence[str] = ()  # ARNs


class HealthCheck(Protocol):
    """One configured health check; ``check`` is polled until a gate ends.

    Return PENDING while it cannot tell yet, UNHEALTHY only when the release is bad (the gate
    fails at once and rolls back), HEALTHY when every target passes. A check object lives for one
    gate or bake, so it may keep state between polls (consecutive successes).
    """

    def check(self, targets: GateTargets, ctx: PluginContext) -> HealthReport: ...


class Builder(Protocol):
    """Turns an image definition into an artifact, reusing an existing one with the same digest."""

    def digest(self, image: ImageSpec, ctx: PluginContext) -> str:
        """A digest of every input that shapes the image (content addressing)."""

    def find(self, image: ImageSpec, ctx: PluginContext) -> Artifact | None:
        """The existing artifact for the image's current inputs, or None when a build is needed."""

    def build(self, image: ImageSpec, ctx: PluginContext) -> Artifact:
        """Build the image (raise BuildError on failure) and return the artifact."""


class BaseImageBuilder(Builder, Protocol):
    """A builder whose images start from a base image it can name (optional: the built-in
    ``packer`` builder is one). The planner calls ``base_image`` for an image that needs a
    build, to say ``base ami-old -> ami-new: rebuild``; ``drift`` calls it to report releases
    whose image was built on an older base (``stale-base``)."""

    def base_image(self, image: ImageSpec, ctx: PluginContext) -> str | None:
        """The base AMI a build would start from now; None when the image names none."""


def base_image_of(builder: Builder, image: ImageSpec, ctx: PluginContext) -> str | None:
    """``builder.base_image(...)`` for builders that have it; None for the others."""
    method = getattr(builder, "base_image", None)
    if method is None:
        return None
    found = method(image, ctx)
    return None if found is None else str(found)


@dataclass(frozen=True)
class RolloutChange:
    """What a strategy plans from: the fleet, the release on it now and the one to roll out."""

    fleet: FleetSpec
    new_release: str
    current_release: str | None  # None when the fleet is created
    current_instances: int  # instances running now that are NOT on new_release
    desired: int  # capacity the fleet must end with
    target_instances: int = 0  # instances already on new_release (a resumed rollout)
    rollback: bool = False  # True when new_release is the previous release being restored
    # Fleets with traffic slots: traffic moves from source_slot to target_slot. Rolling out,
    # target_slot is the idle slot that gets new_release and source_slot the live one (None
    # for a new fleet); rolling back, target_slot is the previous slot being restored (None
    # when there was none) and source_slot the slot of the failed release.
    target_slot: str | None = None
    source_slot: str | None = None


class Strategy(Protocol):
    """Turns a change into steps. Never calls AWS: the engine runs the steps."""

    def plan(self, change: RolloutChange) -> list[Step]: ...


@dataclass(frozen=True)
class RolloutInfo:
    """The rollout a lifecycle hook is told about."""

    id: str
    project: str
    fleet: str
    strategy: str
    from_release: str | None
    to_release: str
    rollback: bool = False
    region: str = ""  # where the fleet's group is (a fleet may deploy to several regions)


class Notifier(Protocol):
    """A configured notifier: an object with ``@hookimpl`` methods for the notify hooks.

    The engine registers it with the plugin manager while it runs, so each lifecycle hook it
    implements (``immutable_sdk_rollout_started``, ``..._step_finished``, ...) is called like a
    module-level hookimpl. A notify hook must return quickly and never raise: a notifier that
    talks to a network hands the work to a thread of its own. ``close`` is called once when the
    engine closes: deliver what is pending within a bounded time, then stop.
    """

    def close(self) -> None: ...


F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class PluginEntry(Generic[F]):
    """A named factory in a registry, with the JSON Schema of its config block."""

    name: str
    kind: str
    factory: F
    schema: Mapping[str, Any]
    plugin: str  # the registering plugin's name
    distribution: str | None = None  # "name version" of the installing distribution
    description: str = ""


class Registry(Generic[F]):
    """Named factories of one kind (builders, strategies, health checks, notifiers)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, PluginEntry[F]] = {}
        self._current: tuple[str, str | None] = ("<unknown>", None)

    def add(
        self,
        name: str,
        factory: F,
        *,
        schema: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> None:
        """Register ``factory`` under ``name``; ``schema`` validates the config block.

        The schema describes the whole block, discriminator key (``type`` or ``builder``)
        included; the SDK closes it with ``additionalProperties: false`` if it says nothing.
        """
        plugin, dist = self._current
        if name in self._entries:
            other = self._entries[name]
            raise PluginError(
                plugin,
                f"{self.kind} {name!r} is already registered by plugin {other.plugin!r}"
                + (f" ({other.distribution})" if other.distribution else ""),
                distribution=dist,
            )
        self._entries[name] = PluginEntry(
            name=name,
            kind=self.kind,
            factory=factory,
            schema=dict(schema or {"type": "object"}),
            plugin=plugin,
            distribution=dist,
            description=description,
        )

    def get(self, name: str) -> PluginEntry[F]:
        from difflib import get_close_matches

        try:
            return self._entries[name]
        except KeyError:
            known = sorted(self._entries)
            close = get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise PluginError(
                name, f"unknown {self.kind} (known: {', '.join(known) or 'none'}){hint}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[PluginEntry[F]]:
        return iter(self._entries[n] for n in sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def _registering(self, plugin: str, distribution: str | None) -> None:
        self._current = (plugin, distribution)


BuilderFactory = Callable[[Mapping[str, Any]], Builder]
StrategyFactory = Callable[[Mapping[str, Any]], Strategy]
HealthCheckFactory = Callable[[Mapping[str, Any]], HealthCheck]
NotifierFactory = Callable[[Mapping[str, Any]], Notifier]


__all__ = [
    "PROJECT",
    "TAG_BUILDER",
    "TAG_BUILT_AT",
    "TAG_DIGEST",
    "TAG_FLEET",
    "TAG_IMAGE",
    "TAG_PROJECT",
    "TAG_RELEASE",
    "TAG_ROLLOUT",
    "TAG_SLOT",
    "TAG_SOURCE_AMI",
    "Analyze",
    "Artifact",
    "AwsError",
    "Bake",
    "BaseImageBuilder",
    "BuildError",
    "Builder",
    "BuilderFactory",
    "Coalescer",
    "Event",
    "FleetSpec",
    "Gate",
    "GateFailed",
    "GateTargets",
    "HealthCheck",
    "HealthCheckFactory",
    "HealthReport",
    "HealthStatus",
    "HttpAnswer",
    "ImageSpec",
    "ImmutableSdkError",
    "Launch",
    "Notifier",
    "NotifierFactory",
    "Pause",
    "Phase",
    "PluginConfig",
    "PluginContext",
    "PluginEntry",
    "PluginError",
    "Provision",
    "Registry",
    "Retire",
    "RolloutChange",
    "RolloutInfo",
    "Scale",
    "ShiftTraffic",
    "Size",
    "SpecError",
    "Step",
    "Strategy",
    "StrategyFactory",
    "Target",
    "aws_error_code",
    "base_image_of",
    "get_logger",
    "hookimpl",
    "http_request",
    "parse_duration",
    "parse_size",
    "proxy_from_environment",
    "redact_text",
    "register_secret",
]


def aws_error_code(exc: BaseException) -> str | None:
    """The AWS error code of a failed client call (``InvalidAMIID.NotFound``), else None.

    Lets plugins inspect AWS errors without importing botocore.
    """
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None
