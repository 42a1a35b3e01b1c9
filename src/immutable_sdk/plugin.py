"""Everything a plugin author needs, and the only module built-in plugins import from the SDK.

A plugin is a module or object with ``@hookimpl`` functions named after the hookspecs in
``immutable_sdk.hookspecs``. Register hooks receive a ``Registry`` and call ``registry.add``;
factories receive the plugin's (already validated) config block and return the plugin object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import pluggy

from .bounded_http import HttpAnswer, http_request, proxy_from_environment
from .clock import Clock, parse_time
from .coalesce import Coalescer, shared_coalescer
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
from .spec.analysis_schema import analysis_schema
from .spec.model import FleetSpec, ImageSpec, PluginConfig
from .templates import placeholder_problems
from .units import Size, parse_duration, parse_size


def get_logger(**context: Any) -> Any:
    """A structlog logger bound to ``context``, through the SDK's logging (and its redaction).

    Imported on first use: loading a spec or the CLI's commands must not pay for structlog.
    """
    from .logs import get_logger as sdk_logger

    return sdk_logger(**context)


PROJECT = "immutable_sdk"
hookimpl = pluggy.HookimplMarker(PROJECT)

# Tags on every AWS resource the SDK creates (docs/design.md, section 6).
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

    def metric_data(
        self, queries: Sequence[Mapping[str, Any]], start: float, end: float
    ) -> dict[str, list[tuple[float, float]]]:
        """CloudWatch ``GetMetricData`` for all ``queries`` (dicts with unique ``Id``s) between
        ``start`` and ``end`` (epoch seconds), batched and paged: query Id -> [(time, value)]."""

    def alarm_states(self, names: Sequence[str]) -> dict[str, str]:
        """CloudWatch alarm name -> OK, ALARM, INSUFFICIENT_DATA, or MISSING when it does not
        exist (one batched DescribeAlarms)."""

    def sign_request(
        self,
        method: str,
        url: str,
        *,
        service: str,
        region: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> dict[str, str]:
        """The headers of a request signed with AWS Signature Version 4 by botocore's signer,
        with the session's credentials (the sandbox's when there is one), for ``service``
        (``aps`` for Amazon Managed Service for Prometheus) in ``region`` (default the
        context's). Send exactly these headers, with the same body. The signature's time is
        the wall clock's, never a virtual clock's: AWS checks it."""


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


HEALTH_CHECK_CONTRACT = 2
"""The health-check contract's version. 1: ``check`` only (state between polls lives in the
object and ends with it). 2: a check that keeps state between polls may also implement
``StatefulHealthCheck`` (``snapshot``/``restore``), so a gate suspended in one process goes on
in another with its streaks. Version-1 checks keep working: they start afresh after a resume."""


@runtime_checkable
class StatefulHealthCheck(HealthCheck, Protocol):
    """A health check whose state between polls survives the process (contract version 2).

    ``snapshot()`` returns that state as JSON-serialisable data (dicts, lists, strings, numbers,
    booleans, None), small (it is stored with the rollout at every suspended gate).
    ``restore(state)`` is called on a fresh object made by the same factory from the same
    config, before its first poll, with what ``snapshot()`` returned: afterwards the object
    judges the next poll exactly as the one that made the snapshot would have. ``restore``
    must accept every snapshot an earlier version of the plugin made, or raise ``ValueError``
    (the check then starts afresh, as a version-1 check does).
    """

    def snapshot(self) -> Mapping[str, Any]: ...

    def restore(self, state: Mapping[str, Any]) -> None: ...


class Builder(Protocol):
    """Turns an image definition into an artifact, reusing an existing one with the same digest."""

    def digest(self, image: ImageSpec, ctx: PluginContext) -> str:
        """A digest of every input that shapes the image (content addressing)."""

    def find(self, image: ImageSpec, ctx: PluginContext) -> Artifact | None:
        """The existing artifact for the image's current inputs, or None when a build is needed."""

    def build(self, image: ImageSpec, ctx: PluginContext) -> Artifact:
        """Build the image (raise BuildError on failure) and return the artifact."""


BUILD_RUNNING = "running"
BUILD_DONE = "done"
BUILD_FAILED = "failed"


@dataclass(frozen=True)
class BuildPoll:
    """Where a started build stands: ``running``, ``done`` (with its ``artifact``) or
    ``failed`` (with the service's ``reason``); ``detail`` is the service's own status."""

    status: str  # BUILD_RUNNING | BUILD_DONE | BUILD_FAILED
    artifact: Artifact | None = None
    reason: str = ""
    detail: str = ""


@runtime_checkable
class ResumableBuilder(Builder, Protocol):
    """A builder whose builds outlast the process that starts them (EC2 Image Builder).

    ``start`` submits the build and returns at once with a handle: JSON-serialisable data
    (the build's ARN, what ``poll`` needs) that the engine stores, keyed by image and digest,
    so another process finds it. ``token`` makes the submission idempotent (the same token
    submits one build). ``poll(image, handle, ctx)``, from any process and a fresh builder
    object, asks once and never waits. ``build`` stays the blocking form: start, then poll
    on the clock until the build ends.
    """

    def start(
        self, image: ImageSpec, ctx: PluginContext, *, token: str | None = None
    ) -> Mapping[str, Any]: ...

    def poll(
        self, image: ImageSpec, handle: Mapping[str, Any], ctx: PluginContext
    ) -> BuildPoll: ...


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
class AnalysisSlot:
    """A traffic slot judged by an analysis: the new release's (canary) or the previous one's.

    ``fill`` puts the slot's names into a provider's template: ``{slot}``, ``{role}``,
    ``{fleet}``, ``{release}``, ``{region}``, ``{auto_scaling_group}``, and ``{target_group}``
    / ``{load_balancer}`` as CloudWatch names them (``targetgroup/web/0123``, ``app/web/4567``).
    Only these exact tokens are replaced, so PromQL's own braces are left alone.
    """

    role: str  # "canary" or "baseline"
    slot: str  # "blue" or "green"
    fleet: str
    release: str | None
    region: str
    auto_scaling_group: str
    target_group_arn: str
    load_balancer_arn: str = ""  # "" when unknown

    @property
    def target_group(self) -> str:
        return arn_resource(self.target_group_arn, "")

    @property
    def load_balancer(self) -> str:
        return arn_resource(self.load_balancer_arn, "loadbalancer/")

    def fill(self, template: str) -> str:
        names = {
            "slot": self.slot,
            "role": self.role,
            "fleet": self.fleet,
            "release": self.release or "",
            "region": self.region,
            "auto_scaling_group": self.auto_scaling_group,
            "target_group": self.target_group,
            "load_balancer": self.load_balancer,
        }
        for key, value in names.items():
            template = template.replace("{" + key + "}", value)
        return template


def arn_resource(arn: str, strip: str = "") -> str:
    """The resource part of an ARN as CloudWatch's dimensions name it, ``strip`` removed from
    its front: ``arn:...:targetgroup/web/0123`` -> ``targetgroup/web/0123``; with
    ``strip="loadbalancer/"``, ``arn:...:loadbalancer/app/web/4567`` -> ``app/web/4567``."""
    resource = arn.split(":", 5)[-1] if arn else ""
    return resource[len(strip) :] if strip and resource.startswith(strip) else resource


@dataclass(frozen=True)
class MetricQuery:
    """One question to an analysis provider: this metric, for this slot, over this window."""

    metric: Mapping[str, Any]  # the metric's block as written in the spec (validated)
    slot: AnalysisSlot
    start: float  # epoch seconds
    end: float

    @property
    def name(self) -> str:
        return str(self.metric.get("name", ""))


@dataclass(frozen=True)
class MetricSamples:
    """A provider's answer: what the metric measured for one slot over the window.

    ``value`` is the metric over the whole window (None: no data), judged against ``max`` and
    ``max_ratio``; ``count`` is how many samples it stands on (requests, data points), checked
    against ``min_samples``; ``points`` are the window's individual data points, for the
    statistical comparison (``compare``); ``detail`` is shown with the verdict.
    """

    value: float | None
    count: float
    points: Sequence[float] = ()
    detail: str = ""


class AnalysisProvider(Protocol):
    """Reads metrics for the canary analysis; the SDK's judge decides (the same for all).

    ``samples`` gets every query of one judgement (each metric for the canary slot, and for the
    baseline slot when the metric compares with it) and returns one ``MetricSamples`` per query,
    in order. It may batch them into one call. A provider may also define ``metrics`` (the
    metric blocks to judge, when its block does not list them under ``metrics``) and
    ``interval`` (seconds between judgements, when its block has no ``interval``).
    """

    def samples(
        self, queries: Sequence[MetricQuery], ctx: PluginContext
    ) -> Sequence[MetricSamples]: ...


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
T = TypeVar("T")


@dataclass(frozen=True)
class ConfigProblem:
    """A value of a plugin's config block that the plugin refuses, found by its ``check``.

    ``path`` leads from the block to the value (``("batch_size",)``, ``("steps", 2, "weight")``;
    empty for the block itself); ``message`` says what is expected and what was found, like
    "expected a regular expression, got '((': missing ), unterminated subpattern". The SDK adds
    the file, line, column and dotted path.
    """

    path: tuple[str | int, ...]
    message: str


@dataclass(frozen=True)
class CheckContext:
    """What a plugin's ``check`` sees besides its block.

    ``fleet``: the fleet block a strategy or health check belongs to (``defaults`` merged in),
    ``{}`` for builders and notifiers; ``base_dir``: the folder of the spec file that wrote the
    block, where its relative paths start (as ``PluginConfig.base_dir`` at run time).
    """

    fleet: Mapping[str, Any] = field(default_factory=dict)
    base_dir: Path = Path(".")


ConfigCheck = Callable[[Mapping[str, Any], CheckContext], Iterable[ConfigProblem]]
"""``check(config, context)``: the problems of a block beyond what a schema says (a regular
expression that does not compile, sizes that together cannot work, a template variable the
template does not declare). Called by ``validate`` (and so before every plan and apply), never
with AWS."""


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
    check: ConfigCheck | None = None  # problems a schema cannot express (see ConfigCheck)

    def create(
        self: PluginEntry[Callable[[Mapping[str, Any]], T]],
        config: Mapping[str, Any],
        *,
        where: str = "",
    ) -> T:
        """The factory's product for ``config``. Any exception but the SDK's own becomes a
        PluginError naming the plugin and its distribution (``where``: e.g. a spec location)."""
        try:
            return self.factory(config)
        except ImmutableSdkError:
            raise
        except Exception as exc:
            raise PluginError(
                self.plugin,
                f"{self.kind} {self.name!r}{where} failed to start: {exc!r}",
                distribution=self.distribution,
            ) from exc

    references: ReferencesOf | None = None  # the AWS resources a config block names

    def referenced(self, config: Mapping[str, Any]) -> References:
        """What ``config`` (a validated block of this entry) names; PluginError if it fails."""
        if self.references is None:
            return References()
        try:
            found = self.references(config)
        except Exception as exc:
            raise PluginError(
                self.plugin, f"{self.kind} {self.name!r}: references failed: {exc}"
            ) from exc
        if not isinstance(found, References):
            raise PluginError(
                self.plugin,
                f"{self.kind} {self.name!r}: references returned {type(found).__name__}, "
                "not References",
            )
        return found


@dataclass(frozen=True)
class References:
    """AWS resources that a plugin's config block names and expects to exist.

    A plugin declares them with ``registry.add(..., references=fn)``, where ``fn`` receives
    the validated block and returns a ``References``. The SDK does not create them on AWS;
    the sandbox (``--sandbox``) seeds them, so that a spec naming them runs unchanged there:
    alarms are created in state OK; subnets and security groups by ``Name`` tag in the
    sandbox's VPC; target groups (with a load balancer of the same name, or the one given in
    ``load_balancers``); hosted zones by name. Names or ids, as the spec writes them.
    """

    alarms: Sequence[str] = ()
    subnets: Sequence[str] = ()
    security_groups: Sequence[str] = ()
    target_groups: Sequence[str] = ()
    load_balancers: Mapping[str, str] = field(default_factory=dict)  # target group -> LB
    hosted_zones: Sequence[str] = ()


ReferencesOf = Callable[[Mapping[str, Any]], References]


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
        check: ConfigCheck | None = None,
        references: ReferencesOf | None = None,
    ) -> None:
        """Register ``factory`` under ``name``; ``schema`` validates the config block.

        The schema describes the whole block, discriminator key (``type`` or ``builder``)
        included; the SDK closes it with ``additionalProperties: false`` if it says nothing.
        ``check(config, fleet)`` finds what a schema cannot (see ``ConfigCheck``): its
        problems are reported with the spec's other problems, located at their keys.
        ``references``: given a validated block, the AWS resources it names (``References``),
        which the sandbox creates so the spec runs there unchanged.
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
            check=check,
            references=references,
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
AnalysisProviderFactory = Callable[[Mapping[str, Any]], AnalysisProvider]


__all__ = [
    "BUILD_DONE",
    "BUILD_FAILED",
    "BUILD_RUNNING",
    "HEALTH_CHECK_CONTRACT",
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
    "AnalysisProvider",
    "AnalysisProviderFactory",
    "AnalysisSlot",
    "Analyze",
    "Artifact",
    "AwsError",
    "Bake",
    "BaseImageBuilder",
    "BuildError",
    "BuildPoll",
    "Builder",
    "BuilderFactory",
    "CheckContext",
    "Coalescer",
    "ConfigCheck",
    "ConfigProblem",
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
    "MetricQuery",
    "MetricSamples",
    "Notifier",
    "NotifierFactory",
    "Pause",
    "Phase",
    "PluginConfig",
    "PluginContext",
    "PluginEntry",
    "PluginError",
    "Provision",
    "References",
    "ReferencesOf",
    "Registry",
    "ResumableBuilder",
    "Retire",
    "RolloutChange",
    "RolloutInfo",
    "Scale",
    "ShiftTraffic",
    "Size",
    "SpecError",
    "StatefulHealthCheck",
    "Step",
    "Strategy",
    "StrategyFactory",
    "Target",
    "analysis_schema",
    "arn_resource",
    "aws_error_code",
    "base_image_of",
    "get_logger",
    "hookimpl",
    "http_request",
    "parse_duration",
    "parse_size",
    "parse_time",
    "placeholder_problems",
    "proxy_from_environment",
    "redact_text",
    "register_secret",
    "shared_coalescer",
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
