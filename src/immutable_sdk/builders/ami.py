"""The ``ami`` builder: bring your own AMI; nothing is built, the AMI is resolved and checked.

::

    images:
      base:
        builder: ami
        id: ami-0123456789abcdef0          # one region only (an AMI id lives in one region)
      multi:
        builder: ami
        ids: {us-east-1: ami-0aaa..., eu-west-1: ami-0bbb...}
      newest:
        builder: ami
        filters: {name: "golden-base-*"}   # name -> value or list (EC2 DescribeImages filters)
        owners: [self]                     # default: any owner the account can see

With ``filters``, each of the image's regions gets the newest match (``CreationDate``) that is
``available`` and not deprecated. Resolution fails with a BuildError when nothing matches, when
the AMI is deprecated (its ``DeprecationTime`` has passed, judged by the context's clock) or not
``available``, or when a region of ``image.regions`` lacks it. ``build()`` and ``find()`` both
resolve (nothing is built); the digest is the resolved AMI ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from immutable_sdk.plugin import (
    TAG_BUILDER,
    TAG_DIGEST,
    TAG_IMAGE,
    Artifact,
    BuilderFactory,
    BuildError,
    ImageSpec,
    PluginContext,
    Registry,
    aws_error_code,
    hookimpl,
    parse_time,
)

from .digest import canonical_digest
from .lineage import IMAGE_PROPERTIES, iso_utc

NAME = "ami"
VERSION = "1"

_AMI_ID = {"type": "string", "pattern": "^ami-[0-9a-f]+$", "x-expect": "an AMI id like 'ami-0abc'"}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["builder"],
    "additionalProperties": False,
    "oneOf": [{"required": ["id"]}, {"required": ["ids"]}, {"required": ["filters"]}],
    "dependentRequired": {"owners": ["filters"]},
    "properties": {
        "builder": {"const": NAME, "description": "Use an existing AMI (nothing is built)."},
        "id": {**_AMI_ID, "description": "The AMI id (for an image in one region)."},
        "ids": {
            "type": "object",
            "additionalProperties": _AMI_ID,
            "minProperties": 1,
            "description": "The AMI id per region (region -> AMI id).",
        },
        "filters": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
            },
            "description": "EC2 image filters (name -> value or list); the newest match wins.",
        },
        "owners": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Owners to search with `filters` (account ids, self, amazon...).",
        },
        **IMAGE_PROPERTIES,
    },
}


def unusable_reason(ami: Mapping[str, Any], now: float) -> str | None:
    """Why an AMI (as DescribeImages returns it) cannot be used at ``now``, or None."""
    state = ami.get("State")
    if state != "available":
        return f"is {state or 'in an unknown state'}, not available"
    deprecated_at = parse_time(ami.get("DeprecationTime"))
    if deprecated_at is not None and deprecated_at <= now:
        return f"is deprecated since {iso_utc(deprecated_at)}"
    return None


def newest_usable(images: list[Mapping[str, Any]], now: float) -> tuple[Mapping[str, Any], str]:
    """The newest usable image, or the newest one and why it cannot be used ('' when usable)."""
    ordered = sorted(images, key=lambda i: str(i.get("CreationDate", "")), reverse=True)
    for image in ordered:
        if unusable_reason(image, now) is None:
            return image, ""
    return ordered[0], unusable_reason(ordered[0], now) or ""


def _filters(config: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    filters: list[dict[str, Any]] = []
    owners = [str(o) for o in config.get("owners") or ()]
    for name, value in dict(config["filters"]).items():
        values = [str(v) for v in (value if isinstance(value, list) else [value])]
        if name == "owners":  # the spec writes owners inside filters; it is not an EC2 filter
            owners += values
        else:
            filters.append({"Name": str(name), "Values": values})
    return filters, owners


class AmiBuilder:
    """Resolves an existing AMI per region (see the module docstring)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    def _by_id(self, image: ImageSpec, ctx: PluginContext, region: str) -> Mapping[str, Any]:
        config = image.config
        if "ids" in config:
            ids = dict(config["ids"])
            if region not in ids:
                raise BuildError(image.name, f"ids: no AMI given for region {region}")
            ami_id = str(ids[region])
        else:
            if len(image.regions) > 1:
                raise BuildError(
                    image.name,
                    f"id: an AMI id exists in one region only, and this image needs "
                    f"{', '.join(image.regions)}; give `ids: {{region: ami-...}}` instead",
                )
            ami_id = str(config["id"])
        try:
            found = ctx.client("ec2", region).describe_images(ImageIds=[ami_id])["Images"]
        except Exception as exc:
            if aws_error_code(exc) not in ("InvalidAMIID.NotFound", "InvalidAMIID.Malformed"):
                raise
            found = []
        if not found:
            raise BuildError(image.name, f"AMI {ami_id} does not exist in {region}")
        ami = found[0]
        reason = unusable_reason(ami, ctx.clock.now())
        if reason:
            raise BuildError(image.name, f"AMI {ami_id} in {region} {reason}")
        return dict(ami)

    def _by_filters(self, image: ImageSpec, ctx: PluginContext, region: str) -> Mapping[str, Any]:
        filters, owners = _filters(image.config)
        kwargs: dict[str, Any] = {"Filters": filters, "IncludeDeprecated": True}
        if owners:
            kwargs["Owners"] = owners
        found = ctx.client("ec2", region).describe_images(**kwargs)["Images"]
        shown = ", ".join(f"{f['Name']}={'|'.join(f['Values'])}" for f in filters)
        if owners:
            shown += f" (owners {', '.join(owners)})"
        if not found:
            raise BuildError(image.name, f"no AMI in {region} matches {shown}")
        ami, reason = newest_usable(found, ctx.clock.now())
        if reason:
            raise BuildError(
                image.name,
                f"no usable AMI in {region} matches {shown}: the newest, {ami['ImageId']}, "
                + reason,
            )
        return ami

    def resolve(self, image: ImageSpec, ctx: PluginContext) -> Artifact:
        amis: dict[str, str] = {}
        names: dict[str, str] = {}
        for region in image.regions:
            if "filters" in image.config:
                ami = self._by_filters(image, ctx, region)
            else:
                ami = self._by_id(image, ctx, region)
            amis[region] = str(ami["ImageId"])
            names[region] = str(ami.get("Name", ""))
        digest = _digest(amis)
        lineage = {TAG_IMAGE: image.name, TAG_BUILDER: NAME, TAG_DIGEST: digest}
        ctx.emit("build.resolved", image=image.name, amis=dict(amis), names=names)
        return Artifact(
            image=image.name,
            builder=NAME,
            digest=digest,
            amis=amis,
            lineage=lineage,
            built=False,
            # the AMI of each region alone (for one region, the same as ``digest``)
            region_digests={r: _digest({r: ami}) for r, ami in amis.items()},
        )

    def digest(self, image: ImageSpec, ctx: PluginContext) -> str:
        return self.resolve(image, ctx).digest

    def find(self, image: ImageSpec, ctx: PluginContext) -> Artifact | None:
        return self.resolve(image, ctx)

    def build(self, image: ImageSpec, ctx: PluginContext) -> Artifact:
        return self.resolve(image, ctx)


def _digest(amis: Mapping[str, str]) -> str:
    return canonical_digest({"builder": NAME, "version": VERSION, "amis": dict(amis)})


def _factory(config: Mapping[str, Any]) -> AmiBuilder:
    return AmiBuilder(config)


@hookimpl
def immutable_sdk_add_builders(registry: Registry[BuilderFactory]) -> None:
    registry.add(
        NAME,
        _factory,
        schema=SCHEMA,
        description="Use an existing AMI: a pinned id per region, or the newest filter match.",
    )
